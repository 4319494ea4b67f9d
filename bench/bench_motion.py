"""Motion-correction benchmark: accuracy, speed and memory of each available engine.

    python -m bench.bench_motion            # full: 1,000-frame accuracy runs, 1,500-frame speed runs,
                                            #       memory for 1,000 vs 20,000 frames (pw-rigid)
    python -m bench.bench_motion --quick    # 300-frame accuracy runs, 500-frame speed runs,
                                            #       memory for 1,000 vs 4,000 frames
    python -m bench.bench_motion --only speed   # one section (repeatable)

Accuracy: synthetic recordings of the shared forward model (``ace_neuro.synthetic``: 1-photon
background, vessels, neurons, bleaching, Poisson-Gaussian noise) with known motion, 200 x 200 px.
Rigid: RMSE of the per-frame shift (px, after removing the template's constant offset).
Non-rigid: RMSE of the applied displacement field vs the true one, inside the hull of the patch
centres and over the whole interior (per-pixel temporal mean removed: the template's own shape).

Speed: frames/s of the whole call (template + one streaming pass) at 480 x 480 on uint8 frames
held in memory, default parameters (max_shifts 15, strides 48, overlaps 24, gSig_filt 7).

Memory: peak resident memory (VmHWM) of a child process correcting a lazily generated
480 x 480 movie (frames are made on demand, never stored) of two lengths; must stay flat
(within 20 %) and under 1.5 GiB.

Engines: ``native`` always; ``caiman`` (NoRMCorre) only when ``import caiman.motion_correction``
works (CaImAn is installed with conda; it is not a dependency of this project).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ace_neuro.params import MotionParams
from ace_neuro.stages.motion import correct_motion, correct_motion_in_memory, make_patch_grid, shift_field
from ace_neuro.stages.motion.warp import warp_rigid

from .common import run_child

SIZE = 480
BASELINE_FPS = {"rigid": 45.0, "pw-rigid": 15.0}  # CaImAn NoRMCorre on this 2-core machine, 480 x 480
TARGET_FPS = {"rigid": 300.0, "pw-rigid": 80.0}
TARGET_RMSE = {"rigid": 0.1, "pw-rigid": 0.3}
MEMORY_LIMIT_MIB = 1536.0
MEMORY_GROWTH = 0.20

ACCURACY_RIGID = MotionParams(pw_rigid=False, max_shifts=(8, 8), gSig_filt=(3, 3))
ACCURACY_PW = MotionParams(pw_rigid=True, max_shifts=(8, 8), gSig_filt=(3, 3), max_deviation_rigid=3)
SPEED = {"rigid": MotionParams(pw_rigid=False), "pw-rigid": MotionParams(pw_rigid=True)}


# --------------------------------------------------------------------------- synthetic movies
class MovingScene:
    """A (T, H, W) uint8 movie made on demand: a 1-photon-like scene moved by a bounded random
    walk (``shifts``, content displacement in px) plus noise. Sliceable along frames."""

    def __init__(self, n_frames: int, size: int = SIZE, *, max_shift: float = 8.0, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.pad = int(np.ceil(max_shift)) + 4
        n = size + 2 * self.pad
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        scene = np.full((n, n), 60.0, np.float32)
        for _ in range(5):
            cy, cx, s = rng.uniform(0, n, 2).tolist() + [rng.uniform(0.25, 0.5) * n]
            scene += rng.uniform(15, 35) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        cells = np.zeros((n, n), np.float32)
        k = n * n // 250
        cells[rng.integers(0, n, k), rng.integers(0, n, k)] = rng.uniform(400, 1400, k)
        scene += cv2.GaussianBlur(cells, (0, 0), 3.0)
        vessels = np.zeros((n, n), np.float32)
        for _ in range(6):
            pts = np.cumsum(rng.normal(0, 1, (40, 2)), 0)
            pts = (pts - pts.min(0)) / (np.ptp(pts, 0) + 1e-9) * n
            cv2.polylines(vessels, [pts.astype(np.int32)], False, 1.0, thickness=int(rng.integers(2, 5)))
        self.scene = scene * (1 - 0.5 * np.clip(cv2.GaussianBlur(vessels, (0, 0), 1.5), 0, 1))
        steps = rng.normal(0, max_shift / 8, (n_frames, 2)).astype(np.float32)
        shifts = np.zeros((n_frames, 2), np.float32)
        for t in range(1, n_frames):
            shifts[t] = np.clip(0.95 * shifts[t - 1] + steps[t], -max_shift, max_shift)
        self.shifts = shifts
        self.noise = rng.normal(0, 3.0, (16, size, size)).astype(np.float32)
        self.shape = (n_frames, size, size)
        self.dtype = np.dtype(np.uint8)

    def frame(self, t: int) -> np.ndarray:
        p, s = self.pad, self.shape[1]
        moved = warp_rigid(self.scene, -self.shifts[t])[p:p + s, p:p + s]
        return np.clip(moved + self.noise[t % len(self.noise)], 0, 255).astype(np.uint8)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.frame(int(key))
        start, stop, step = key.indices(self.shape[0])
        return np.stack([self.frame(t) for t in range(start, stop, step)]) if stop > start \
            else np.empty((0,) + self.shape[1:], np.uint8)


def _forward_model():
    try:
        from ace_neuro.synthetic import model
    except ImportError as exc:  # the shared forward model is a separate module of this project
        print(f"  shared synthetic model unavailable ({exc}); accuracy skipped")
        return None
    return model


def content_field(disp: np.ndarray) -> np.ndarray:
    """Displacement at template coordinates p: e(p) = d(p + e(p)) (d is given at observed ones)."""
    h, w = disp.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    e = disp.copy()
    for _ in range(4):
        e = np.stack([cv2.remap(disp[c], xx + e[1], yy + e[0], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE) for c in (0, 1)])
    return e


def field_rmse(est: np.ndarray, truth: np.ndarray, region) -> float:
    diff = (est - truth)[(slice(None), slice(None)) + region]
    diff -= diff.mean(axis=0, keepdims=True)
    return float(np.sqrt((diff ** 2).sum(axis=1).mean()))


# --------------------------------------------------------------------------- engines
def caiman_status() -> tuple[bool, str]:
    try:
        import caiman.motion_correction  # noqa: F401
    except Exception as exc:  # any import failure means the engine is unavailable
        return False, f"{type(exc).__name__}: {exc}"
    return True, "importable"


def run_native(movie, params: MotionParams):
    """Corrected shifts of an in-memory movie: (rigid (T, 2), field(t) or None, seconds)."""
    t0 = time.perf_counter()
    _, res = correct_motion_in_memory(movie, params)
    seconds = time.perf_counter() - t0
    field = (lambda t: shift_field(res, t)) if params.pw_rigid else None
    return res.rigid_shifts, field, seconds


def run_caiman(movie, params: MotionParams):
    """CaImAn's NoRMCorre on the same movie (written to a temporary TIFF, as CaImAn expects).

    CaImAn reports shifts in its own axis order and sign; the rigid ones are mapped to ours by
    the best fit over the four sign / order choices. Its piecewise field is not compared.
    """
    import caiman.motion_correction as cmc
    import tifffile

    with tempfile.TemporaryDirectory() as tmp:
        fname = str(Path(tmp) / "movie.tif")
        tifffile.imwrite(fname, np.asarray(movie))
        mc = cmc.MotionCorrect(fname, dview=None, max_shifts=params.max_shifts, strides=params.strides,
                               overlaps=params.overlaps, max_deviation_rigid=params.max_deviation_rigid,
                               pw_rigid=params.pw_rigid, gSig_filt=params.gSig_filt,
                               border_nan=params.border_nan, shifts_opencv=params.shifts_opencv)
        t0 = time.perf_counter()
        mc.motion_correct(save_movie=False)
        seconds = time.perf_counter() - t0
        shifts = np.asarray(mc.shifts_rig, dtype=np.float32)
    return shifts, None, seconds


def _match_convention(est: np.ndarray, truth: np.ndarray) -> np.ndarray:
    best, best_err = est, np.inf
    for order in ((0, 1), (1, 0)):
        for sign in ((1, 1), (-1, -1), (1, -1), (-1, 1)):
            cand = est[:, order] * np.asarray(sign, np.float32)
            err = cand - truth
            rmse = np.sqrt(((err - err.mean(0)) ** 2).sum(1).mean())
            if rmse < best_err:
                best, best_err = cand, rmse
    return best


def engines() -> list[tuple[str, object]]:
    ok, why = caiman_status()
    out = [("native", run_native)]
    if ok:
        out.append(("caiman", run_caiman))
    else:
        print(f"  engine caiman: unavailable (import caiman.motion_correction failed: {why})")
    return out


# --------------------------------------------------------------------------- sections
def accuracy(quick: bool) -> list[tuple]:
    model = _forward_model()
    if model is None:
        return []
    n = 300 if quick else 1000
    rows = []
    rigid_cfg = model.SyntheticConfig(height=200, width=200, n_frames=n, motion="rigid", max_shift_px=7.0, seed=1)
    movie, truth = model.simulate_movie(rigid_cfg)
    for name, run in engines():
        shifts, _, seconds = run(movie, ACCURACY_RIGID)
        if name != "native":
            shifts = _match_convention(shifts, truth.shifts)
        err = shifts - truth.shifts
        rmse = float(np.sqrt(((err - err.mean(0)) ** 2).sum(1).mean()))
        rows.append((name, "rigid shift RMSE (px)", rmse, TARGET_RMSE["rigid"], f"{n} frames, {seconds:.1f} s"))
    nr_cfg = model.SyntheticConfig(height=200, width=200, n_frames=n, motion="nonrigid", n_neurons=100,
                                   n_vessels=8, neuropil_fraction=0.3, seed=0)
    movie, truth = model.simulate_movie(nr_cfg)
    target = np.stack([content_field(model.displacement_at(truth, t)) for t in range(n)])
    c = make_patch_grid(movie.shape[1:], ACCURACY_PW).centers
    hull = (slice(int(c[0, 0, 0]), int(c[-1, -1, 0]) + 1), slice(int(c[0, 0, 1]), int(c[-1, -1, 1]) + 1))
    interior = (slice(8, -8), slice(8, -8))
    _, pw_field, pw_s = run_native(movie, ACCURACY_PW)
    rigid_shifts, _, rigid_s = run_native(movie, ACCURACY_RIGID)
    pw_est = np.stack([pw_field(t) for t in range(n)])
    rigid_est = np.broadcast_to(rigid_shifts[:, :, None, None], target.shape)
    rows += [
        ("native", "pw-rigid field RMSE, patch-centre hull (px)", field_rmse(pw_est, target, hull),
         TARGET_RMSE["pw-rigid"], f"{n} frames, {pw_s:.1f} s"),
        ("native", "pw-rigid field RMSE, whole interior (px)", field_rmse(pw_est, target, interior), None, ""),
        ("native", "rigid on the same recording, interior (px)", field_rmse(rigid_est, target, interior), None,
         f"{rigid_s:.1f} s"),
    ]
    return rows


def speed(quick: bool) -> list[tuple]:
    n = 500 if quick else 1500
    scene = MovingScene(n)
    movie = scene[0:n]
    rows = []
    for name, run in engines():
        for mode, params in SPEED.items():
            if name == "native":
                t0 = time.perf_counter()
                stream = correct_motion(movie, params, frame_rate=30.0)
                template_s = time.perf_counter() - t0
                for _ in stream.blocks:
                    pass
                seconds = time.perf_counter() - t0
                note = f"{n} frames; template {template_s:.1f} s, stream {n / (seconds - template_s):.0f} fps"
            else:
                _, _, seconds = run(movie, params)
                note = f"{n} frames"
            rows.append((name, f"{mode} throughput {SIZE}x{SIZE} (frames/s)", n / seconds, TARGET_FPS[mode],
                         f"{note}; CaImAn baseline {BASELINE_FPS[mode]:.0f}"))
    return rows


def memory(quick: bool) -> list[tuple]:
    lengths = (1000, 4000) if quick else (1000, 20000)
    peaks = {}
    for n in lengths:
        run = run_child(["-m", "bench.bench_motion", "--child-memory", str(n)])
        if run.returncode != 0:
            print(run.stderr[-2000:])
            raise SystemExit(f"memory child for {n} frames failed with status {run.returncode}")
        peaks[n] = run.peak_rss_mib
        print(f"  memory child: {run.stdout.strip()} (peak {run.peak_rss_mib:.0f} MiB)", flush=True)
    small, large = lengths
    growth = peaks[large] / peaks[small] - 1.0
    return [
        ("native", f"peak memory pw-rigid {small} frames (MiB)", peaks[small], MEMORY_LIMIT_MIB, ""),
        ("native", f"peak memory pw-rigid {large} frames (MiB)", peaks[large], MEMORY_LIMIT_MIB, ""),
        ("native", f"memory growth {small} -> {large} frames (%)", 100 * growth, 100 * MEMORY_GROWTH, ""),
    ]


def child_memory(n: int) -> None:
    movie = MovingScene(n)
    t0 = time.perf_counter()
    stream = correct_motion(movie, SPEED["pw-rigid"], frame_rate=30.0)
    done = 0
    for block in stream.blocks:
        done += len(block)
    extras = stream.extras()
    seconds = time.perf_counter() - t0
    print(f"{done} frames in {seconds:.1f} s ({done / seconds:.0f} fps incl. generation), "
          f"patch shifts {extras['patch_shifts'].shape}")


# --------------------------------------------------------------------------- report
def _passes(metric: str, value: float, target) -> str:
    if target is None:
        return ""
    higher_is_better = "frames/s" in metric
    ok = value >= target if higher_is_better else value <= target
    return "ok" if ok else "MISS"


def report(rows: list[tuple]) -> bool:
    print(f"\n{'engine':<8} {'measure':<48} {'value':>9} {'target':>9}  {'':4} notes")
    all_ok = True
    for engine, metric, value, target, note in rows:
        verdict = _passes(metric, value, target)
        all_ok &= verdict != "MISS"
        tgt = "" if target is None else f"{target:9.3g}"
        print(f"{engine:<8} {metric:<48} {value:9.3f} {tgt:>9}  {verdict:4} {note}")
    return all_ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter recordings")
    ap.add_argument("--only", choices=("accuracy", "speed", "memory"), action="append",
                    help="run only these sections (repeatable)")
    ap.add_argument("--child-memory", type=int, metavar="N", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_memory:
        child_memory(args.child_memory)
        return 0
    p = SPEED["pw-rigid"]
    print(f"Motion-correction benchmark ({'quick' if args.quick else 'full'}); speed and memory with "
          f"max_shifts={p.max_shifts} strides={p.strides} overlaps={p.overlaps} gSig_filt={p.gSig_filt}")
    rows = []
    for name, section in (("accuracy", accuracy), ("speed", speed), ("memory", memory)):
        if args.only and name not in args.only:
            continue
        print(f"{name} ...", flush=True)
        rows += section(args.quick)
    met = report(rows)
    print("\nall targets met" if met else "\nsome targets missed (MISS above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
