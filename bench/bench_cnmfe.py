"""CNMF-E benchmark: accuracy against ground truth, sensitivity to gSig, speed and memory.

    python -m bench.bench_cnmfe            # everything, incl. 480x480 speed and 2,000 vs 20,000-frame memory
    python -m bench.bench_cnmfe --quick    # accuracy, gSig sensitivity and 300x300 speed only
    python -m bench.bench_cnmfe --memory-only   # only the 480x480 memory runs (2,000 vs 20,000 frames)

Recordings come from ace_neuro.synthetic (strong background, vessels, bleaching, overlapping
neurons, Poisson noise; motion="none": motion is corrected upstream). Found components that the
evaluation accepts are matched to true footprints by optimal assignment on cosine similarity
(>= 0.5). Detection F1 counts the true neurons whose PNR, as CNMF-E's seeding sees it, is above
min_pnr (``filtered_pnr``; a found neuron below that is neither a hit nor a false positive); the
same F1 with the synthetic model's own PNR (CaImAn's disk kernel, ``truth.pnr_cnmfe``) is printed
beside it. Trace r compares C with the true trace as it appears in the movie; spike F1 (2-frame
tolerance) is over matched neurons with SNR >= 5.

Targets: F1 >= 0.95, footprint r >= 0.90, trace r >= 0.95, spike F1 >= 0.8; <= 30 s per 1,000
frames at 300x300; < 3 GiB for 20,000 frames at 480x480, flat in frames (peak memory is the
child process's own VmHWM).
Reference (CaImAn's CNMF-E): F1 ~0.97, trace r ~0.98; ~66 s per 1,000 frames at 300x300 and
4 GB for 2,400 frames.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

from ace_neuro.params import CnmfeParams, EvaluationParams
from ace_neuro.stages.cnmfe import run_cnmfe
from ace_neuro.stages.cnmfe.scoring import score_against_truth, score_components, observed_truth_traces
from ace_neuro.stages.evaluation import accepted_components
from ace_neuro.synthetic.model import SyntheticConfig, simulate_movie

FPS = 30.0


def _config(size: int, n_frames: int, seed: int, density: float = 1.0e-3) -> SyntheticConfig:
    return SyntheticConfig(height=size, width=size, n_frames=n_frames, frame_rate=FPS,
                           n_neurons=max(8, int(round(density * size * size))), motion="none", seed=seed,
                           noise_model="gaussian")


def _score(res, truth, table):
    s = score_against_truth(res, truth, accepted=table["accepted"].to_numpy())
    # the same detection with the synthetic model's own PNR definition (CaImAn's disk kernel)
    acc = np.flatnonzero(table["accepted"].to_numpy())
    s_ref = score_components(res.A[:, acc], res.C[acc], res.S[acc], truth.footprints, observed_truth_traces(truth),
                             detectable=truth.pnr_cnmfe >= float(res.params["min_pnr"]))
    return s, s_ref


def accuracy(quick: bool) -> list[dict]:
    runs = [(160, 1000, 11), (160, 1000, 12)] if quick else [(256, 2000, 11), (256, 2000, 12), (256, 2000, 13)]
    print("\n== accuracy (accepted components vs ground truth) ==")
    print(f"  {'recording':<22}{'found':>6}{'true':>6}{'req':>5}{'F1':>7}{'F1_ref':>8}{'foot r':>8}"
          f"{'trace r':>9}{'spike F1':>10}{'s/1k fr':>9}")
    rows = []
    for size, n, seed in runs:
        movie, truth = simulate_movie(_config(size, n, seed))
        t0 = time.perf_counter()
        res = run_cnmfe(movie, CnmfeParams(), frame_rate=FPS)
        dt = time.perf_counter() - t0
        table = accepted_components(movie, res, EvaluationParams())
        s, s_ref = _score(res, truth, table)
        row = dict(recording=f"{size}x{size}x{n} s{seed}", found=int(table.accepted.sum()), true=truth.n_neurons,
                   required=s.n_detectable, f1=s.f1, f1_ref=s_ref.f1,
                   footprint_r=float(np.median(s.footprint_corr)) if len(s.footprint_corr) else np.nan,
                   trace_r=float(np.median(s.trace_r)) if len(s.trace_r) else np.nan,
                   spike_f1=float(np.median(s.spike_f1)) if len(s.spike_f1) else np.nan,
                   s_per_1k=dt / n * 1000)
        rows.append(row)
        print(f"  {row['recording']:<22}{row['found']:>6}{row['true']:>6}{row['required']:>5}{row['f1']:>7.3f}"
              f"{row['f1_ref']:>8.3f}{row['footprint_r']:>8.3f}{row['trace_r']:>9.4f}{row['spike_f1']:>10.3f}"
              f"{row['s_per_1k']:>9.1f}", flush=True)
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in ("f1", "f1_ref", "footprint_r", "trace_r", "spike_f1")}
    print(f"  {'mean':<39}{mean['f1']:>7.3f}{mean['f1_ref']:>8.3f}{mean['footprint_r']:>8.3f}"
          f"{mean['trace_r']:>9.4f}{mean['spike_f1']:>10.3f}")
    print("  targets: F1 >= 0.95, footprint r >= 0.90, trace r >= 0.95, spike F1 >= 0.8 "
          "(CaImAn CNMF-E: F1 ~0.97, trace r ~0.98)")
    return rows


def gsig_sensitivity(quick: bool) -> list[dict]:
    size, n = (160, 1000) if quick else (200, 1500)
    movie, truth = simulate_movie(_config(size, n, 21))
    print(f"\n== detection F1 when gSig is off (true neurons: soma radius 3.5-6 px + 1.5 px blur; "
          f"{size}x{size}x{n}) ==")
    print(f"  {'gSig':<8}{'CSV values':>12}{'use_suggested':>15}   suggestion")
    rows = []
    for g in (1, 2, 3, 4, 5):
        out = {}
        note = ""
        for sug in (False, True):
            p = replace(CnmfeParams(), gSig=(g, g), gSiz=(4 * g + 1, 4 * g + 1), use_suggested=sug)
            res = run_cnmfe(movie, p, frame_rate=FPS)
            table = accepted_components(movie, res, EvaluationParams())
            # the requirement (PNR above min_pnr) is always judged with the CSV's values at gSig=3
            s = score_against_truth(res, truth, accepted=table["accepted"].to_numpy(), min_pnr=10.0, gSig=(3, 3))
            out[sug] = s.f1
            if sug:
                note = (f"gSig {tuple(res.params['gSig'])}, min_corr {res.params['min_corr']:.2f}, "
                        f"min_pnr {res.params['min_pnr']:.1f}")
        rows.append(dict(gSig=g, f1_csv=out[False], f1_suggested=out[True], suggestion=note))
        print(f"  {g:<8}{out[False]:>12.3f}{out[True]:>15.3f}   {note}", flush=True)
    return rows


def speed(sizes) -> list[dict]:
    print("\n== speed (1,000 frames, wall clock on this machine) ==")
    rows = []
    for size in sizes:
        movie, _ = simulate_movie(_config(size, 1000, 31))
        t0 = time.perf_counter()
        c0 = time.process_time()
        res = run_cnmfe(movie, CnmfeParams(), frame_rate=FPS)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        rows.append(dict(size=size, seconds_per_1k=dt, cpu_seconds=cpu, n_components=res.n_components))
        print(f"  {size}x{size}: {dt:6.1f} s per 1,000 frames (cpu {cpu:.1f} s), {res.n_components} components"
              + ("   target <= 30 s; CaImAn ~66 s" if size == 300 else ""), flush=True)
    return rows


class LoopedFrames:
    """A long movie made by repeating a stored base recording (zarr), read block by block."""

    def __init__(self, base, n_frames: int):
        self.base = base
        self.shape = (int(n_frames),) + tuple(base.shape[1:])
        self.dtype = base.dtype

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError("LoopedFrames supports frame slices only")
        start, stop, _ = key.indices(self.shape[0])
        nb = self.base.shape[0]
        parts = []
        t = start
        while t < stop:
            a = t % nb
            b = min(nb, a + (stop - t))
            parts.append(np.asarray(self.base[a:b]))
            t += b - a
        return np.concatenate(parts) if parts else np.zeros((0,) + self.shape[1:], self.dtype)


def _memory_child(base_path: str, n_frames: int) -> None:
    import zarr

    base = zarr.open_array(base_path, mode="r")
    frames = LoopedFrames(base, n_frames)
    t0 = time.perf_counter()
    res = run_cnmfe(frames, CnmfeParams(), frame_rate=FPS)
    dt = time.perf_counter() - t0
    print(json.dumps({"n_frames": n_frames, "maxrss_mb": _own_peak_mb(), "seconds": dt,
                      "n_components": res.n_components}))


def _own_peak_mb() -> float:
    """This program's peak resident memory (VmHWM). ru_maxrss is not used: Linux carries it
    over fork and exec, so a child of a large parent would report the parent's size."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory(size: int, frame_counts=(2000, 20000)) -> list[dict]:
    import zarr

    print(f"\n== peak memory at {size}x{size} (subprocess, its own VmHWM; the movie is a 1,000-frame "
          f"recording looped, read from zarr) ==", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        movie, _ = simulate_movie(_config(size, 1000, 41))
        path = os.path.join(tmp, "base.zarr")
        z = zarr.create_array(path, shape=movie.shape, chunks=(64, size, size), dtype=movie.dtype)
        z[...] = movie
        del movie
        for n in frame_counts:
            out = subprocess.run([sys.executable, "-m", "bench.bench_cnmfe", "--memory-child", path, str(n)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"  {n:>6} frames: peak {r['maxrss_mb']:7.0f} MB, {r['seconds']:7.1f} s "
                  f"({r['seconds'] / n * 1000:.1f} s per 1,000 frames), {r['n_components']} components", flush=True)
    if len(rows) == 2:
        growth = rows[1]["maxrss_mb"] / rows[0]["maxrss_mb"]
        print(f"  peak memory ratio {frame_counts[1]}/{frame_counts[0]} frames: {growth:.2f} "
              f"(target: flat, < 3 GiB = 3072 MB; CaImAn: 4 GB for 2,400 frames)")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the 480x480 speed and the memory runs")
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    ap.add_argument("--memory-only", action="store_true", help="only the 2,000 vs 20,000-frame memory runs")
    ap.add_argument("--memory-child", nargs=2, metavar=("BASE_ZARR", "N_FRAMES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        _memory_child(args.memory_child[0], int(args.memory_child[1]))
        return 0
    t0 = time.perf_counter()
    if args.memory_only:
        memory(480)
        print(f"\ntotal {time.perf_counter() - t0:.0f} s")
        return 0
    print(f"CNMF-E benchmark ({'quick' if args.quick else 'full'}), {os.cpu_count()} CPUs")
    report = {"accuracy": accuracy(args.quick), "gsig": gsig_sensitivity(args.quick),
              "speed": speed((300,) if args.quick else (300, 480))}
    if not args.quick:
        report["memory"] = memory(480)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
