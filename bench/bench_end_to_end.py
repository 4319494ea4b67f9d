"""End to end, as users run it: the lab's CLI, headless, on realistic V4 session folders (minisim recordings).

    python -m bench.bench_end_to_end --quick     # 200x200, 300x300 and 608x608 (what `make bench` runs)
    python -m bench.bench_end_to_end             # the same, plus the 12,000-frame recording (length)
    python -m bench.bench_end_to_end --save-baseline
    python -m bench.bench_end_to_end --hour      # one hour of 608x608 at 20 fps (`make bench-hour`)

Each recording runs once, with the CSV's use_suggested_params = TRUE (the realistic benchmark's
variant B), in a child process. Printed per recording: frames/s of every stage (frames / the
stage's seconds from the CLI's "done in" lines), wall and CPU seconds (the child and its
workers), peak memory; then each figure against ``bench/end_to_end_baseline.json``. Accuracy is
not scored here: `make bench-realistic` does that on the same recordings.

Needs the minisim environment (`.venv-minisim`, made by `make bench` / `make bench-realistic`);
the recordings are generated once and cached under bench/results/minisim_cache/.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.realistic.catalogue import select
from bench.realistic.runner import (DEFAULT_CACHE, DEFAULT_MINISIM_PYTHON, REPO, ensure_generated, prepare_project,
                                    rec_frames, run_pipeline, stage_seconds)

QUICK = ("ca1_200_1min", "cortex_300_2min_vessels_motion", "cortex_608_3min_motion")
FULL = QUICK + ("ca1_200_10min",)
HOUR = ("cortex_608_60min_motion",)
#: free disk the one-hour run needs: the 3-minute 608x608 run stores 10.3 GB (FFV1 movie 1.4 and its DAQ
#: copy 1.4, raw_movie 1.5, the float32 motion_corrected_movie 5.9), x 13.3 for an hour, plus a margin
HOUR_DISK_GIB = 150
LINE_B = 2  # the project's line with use_suggested_params = TRUE
STAGES = ("raw_movie", "cropped_movie", "dff_movie", "motion_corrected_movie", "cnmfe_summary_images",
          "cnmfe_estimates", "accepted_components", "calcium_events", "calcium_phase", "spectrograms", "nwb_file",
          "line_report")
BASELINE = Path(__file__).resolve().parent / "end_to_end_baseline.json"
OUT = REPO / "bench" / "results" / "end_to_end"
#: a figure this much worse than the baseline is flagged
SLOWER = 0.20


def measure(name: str, folder: Path, frames: int) -> dict:
    rec = select([name])[0]
    project, data = prepare_project(rec, folder, OUT / "work" / name)
    child = run_pipeline(project, data, OUT / "work" / name / "storage", LINE_B)
    if child.returncode != 0:
        raise SystemExit(f"{name}: the CLI failed (exit {child.returncode}):\n{child.stderr[-2000:]}")
    seconds = stage_seconds(child.stderr)
    return {"recording": name, "frames": frames, "wall_s": round(child.seconds, 1),
            "cpu_s": round(child.cpu_seconds, 1), "peak_mib": round(child.peak_rss_mib),
            "fps": {s: round(frames / seconds[s], 1) for s in STAGES if seconds.get(s)}}


def table(rows: list[dict]) -> str:
    head = ["recording", "frames", "wall s", "CPU s", "peak MiB"] + [s.replace("_movie", "") for s in STAGES]
    lines = ["  ".join(head)]
    for r in rows:
        cells = [r["recording"], str(r["frames"]), f"{r['wall_s']:.0f}", f"{r['cpu_s']:.0f}", f"{r['peak_mib']:.0f}"]
        cells += [f"{r['fps'].get(s, float('nan')):.0f}" for s in STAGES]
        lines.append("  ".join(cells))
    return "\n".join(lines) + "\n(stage columns: frames per second)"


def compare(rows: list[dict], baseline: dict) -> list[str]:
    """Each row's wall, CPU, peak memory and per-stage speed against the baseline's row."""
    out = []
    old = {r["recording"]: r for r in baseline.get("rows", [])}
    for r in rows:
        b = old.get(r["recording"])
        if b is None:
            out.append(f"  {r['recording']}: no baseline row")
            continue
        parts, worse = [], []
        for key, higher_is_better in (("wall_s", False), ("cpu_s", False), ("peak_mib", False)):
            change = (r[key] - b[key]) / b[key] if b[key] else 0.0
            parts.append(f"{key} {r[key]:g} ({b[key]:g}, {100 * change:+.0f} %)")
            if change > SLOWER:
                worse.append(key)
        for stage in ("motion_corrected_movie", "cnmfe_estimates"):
            now, then = r["fps"].get(stage), b["fps"].get(stage)
            if now and then:
                change = (now - then) / then
                parts.append(f"{stage} {now:g} fps ({then:g}, {100 * change:+.0f} %)")
                if change < -SLOWER:
                    worse.append(stage)
        out.append(f"  {r['recording']}: " + "; ".join(parts) + (f"  WORSE: {', '.join(worse)}" if worse else ""))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200x200, 300x300 and 608x608 only")
    ap.add_argument("--hour", action="store_true", help="only the one-hour 608x608 recording (72,000 frames)")
    ap.add_argument("--save-baseline", action="store_true", help="write this run's figures as the baseline")
    ap.add_argument("--minisim-python", type=Path, default=DEFAULT_MINISIM_PYTHON)
    args = ap.parse_args(argv)
    if not args.minisim_python.exists():
        print(f"{args.minisim_python} not found: run `make bench` (it creates .venv-minisim)")
        return 1
    names = HOUR if args.hour else QUICK if args.quick else FULL
    if args.hour:
        free = shutil.disk_usage(REPO).free / 2 ** 30
        if free < HOUR_DISK_GIB:
            print(f"the one-hour run needs about {HOUR_DISK_GIB} GiB free beside the repository; {free:.0f} GiB are")
            return 1
    load = os.getloadavg()
    print(f"end to end on {os.cpu_count()} CPUs; load average before: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
          + ("  (the machine is busy: times are not comparable)" if load[0] > 1.0 else ""), flush=True)
    folders = ensure_generated(select(list(names)), DEFAULT_CACHE, args.minisim_python)
    rows = []
    for name in names:
        t0 = time.perf_counter()
        rows.append(measure(name, folders[name], rec_frames(select([name])[0])))
        print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print("\n" + table(rows))
    if BASELINE.exists():
        baseline = json.loads(BASELINE.read_text())
        print(f"\nagainst the baseline of {baseline.get('commit', '?')} ({BASELINE.name}):")
        print("\n".join(compare(rows, baseline)))
    if args.save_baseline:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
        BASELINE.write_text(json.dumps({"commit": commit, "cpus": os.cpu_count(), "rows": rows}, indent=1) + "\n")
        print(f"baseline written to {BASELINE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
