"""Ingest benchmark: raw UCLA DAQ session -> raw_movie zarr, throughput and peak memory vs length.

    python -m bench.bench_ingest            # 1,000 and 10,000 frames at 608x608
    python -m bench.bench_ingest --quick    # 300 and 3,000 frames

Each ingest runs in its own process under ``/usr/bin/time -v`` so the peak resident memory
is the whole process's. Target (issue 2): peak memory under 1 GiB for both lengths and not
growing with length. Synthetic sessions are cached under bench/results/ (gitignored).
"""
import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MIB = 1024

INGEST = """
import resource, sys, time
from ace_neuro.readers import open_recording
from ace_neuro.ingest import recording_stream
from ace_neuro.storage import write_movie
reader = open_recording(sys.argv[1])
stream = recording_stream(reader)
n, marks, seen = reader.info.n_frames, [], 0
def sampled(blocks):
    global seen
    for b in blocks:
        seen += len(b)
        if len(marks) < int(10 * seen / n):
            marks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        yield b
stream.blocks = sampled(stream.blocks)
t0 = time.perf_counter()
write_movie(stream, sys.argv[2])
dt = time.perf_counter() - t0
print(f"FRAMES {n} SECONDS {dt:.3f}")
print("RSS_BY_DECILE", " ".join(str(m) for m in marks))
"""


def make_session(n_frames: int, size: int = 608) -> Path:
    from ace_neuro.synthetic import SyntheticConfig, simulate_ground_truth
    from ace_neuro.synthetic.formats import write_ucla_v4_session

    path = RESULTS / f"ingest_session_{size}_{n_frames}"
    if (path / ".complete").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    truth = simulate_ground_truth(SyntheticConfig(height=size, width=size, n_frames=n_frames, n_neurons=60,
                                                  motion="rigid", seed=11))
    t0 = time.perf_counter()
    write_ucla_v4_session(path, truth, frames_per_file=1000, codec="FFV1")
    (path / ".complete").touch()
    print(f"  generated {n_frames} frames at {size}x{size} in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def measure(session: Path) -> tuple[int, float, float]:
    out = RESULTS / "ingest_out.zarr"
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", INGEST, str(session), str(out)],
                          capture_output=True, text=True, check=True)
    m = re.search(r"FRAMES (\d+) SECONDS ([\d.]+)", proc.stdout)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    deciles = re.search(r"RSS_BY_DECILE (.*)", proc.stdout).group(1)
    shutil.rmtree(out, ignore_errors=True)
    return int(m.group(1)), float(m.group(2)), rss_kb / 1024, deciles


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter recordings")
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    lengths = (300, 3000) if args.quick else (1000, 10000)
    print(f"== ingest (UCLA DAQ V4, FFV1, 608x608) -> raw_movie zarr; target peak < {TARGET_MIB} MiB, flat in length")
    rows = []
    for n in lengths:
        frames, secs, mib, deciles = measure(make_session(n))
        rows.append((frames, secs, mib))
        print(f"  {frames:>6} frames: {frames / secs:7.1f} frames/s, {secs:6.1f} s, peak RSS {mib:7.1f} MiB "
              f"(peak so far at each tenth of the recording, MiB: {deciles})", flush=True)
    growth = rows[1][2] / rows[0][2] - 1
    ok = all(r[2] < TARGET_MIB for r in rows) and growth < 0.2
    print(f"  peak memory growth {lengths[0]} -> {lengths[1]} frames: {100 * growth:+.1f}%  "
          f"[{'PASS' if ok else 'MISS'}: < {TARGET_MIB} MiB and < +20%]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
