"""The registration template, refined from a subsample of the recording.

Frames are read as a few short contiguous runs spread evenly over the recording (cheap to read
from chunked storage, and consecutive frames are nearly aligned). The first template is the
median of the high-passed frames of the run nearest the middle; each refinement pass registers
every sampled frame to the current template, re-centres the shifts on their median (so the
template sits at the typical position and corrected borders stay small) and averages the aligned
high-passed frames. Passes are rigid, except the last one, which is piecewise-rigid when
``pw_rigid`` is set (a sharper template where the motion is non-rigid).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...params import MotionParams
from .aligner import Aligner
from .filters import HighPass
from .parallel import default_workers, run_chunks
from .validation import MotionCorrectionError, check_frames, check_motion_params

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE_FRAMES = 200
RUN_FRAMES = 20


def estimate_template(frames, params: MotionParams, *, n_frames: int = DEFAULT_TEMPLATE_FRAMES,
                      n_iter: int | None = None, n_workers: int | None = None) -> np.ndarray:
    """Estimate the high-passed registration template from a subsample of the movie.

    Parameters
    ----------
    frames : array-like, shape (T, H, W)
        Movie (numpy, zarr, ...), sliced along axis 0; only the sampled frames are read.
    params : MotionParams
        ``gSig_filt``, ``max_shifts``, ``pw_rigid`` (and the patch parameters) are used.
    n_frames : int, optional
        Frames sampled (in runs of 20 consecutive frames spread over the recording).
    n_iter : int, optional
        Refinement passes; default ``params.niter_rig + 1``.
    n_workers : int, optional
        Worker threads (default: one per core).

    Returns
    -------
    ndarray, shape (H, W), float32
        Template of the high-passed movie (``gSig_filt``), or of the mean-removed movie when
        ``gSig_filt`` is None. Shifts are measured against it.
    """
    t, h, w = check_frames(frames)
    check_motion_params(params, (h, w))
    if int(n_frames) < 1:
        raise MotionCorrectionError(f"n_frames = {n_frames}: the template needs at least 1 frame")
    passes = int(params.niter_rig) + 1 if n_iter is None else int(n_iter)
    if passes < 1:
        raise MotionCorrectionError(f"n_iter = {n_iter}: expected at least 1 refinement pass")
    workers = default_workers(n_workers)
    runs = _sample_runs(t, int(n_frames))
    sample = np.concatenate([np.asarray(frames[a:b]) for a, b in runs], axis=0)
    middle = min(range(len(runs)), key=lambda i: abs((runs[i][0] + runs[i][1]) / 2 - t / 2))
    offset = sum(b - a for a, b in runs[:middle])
    first = sample[offset:offset + runs[middle][1] - runs[middle][0]]
    template = _median_highpass(first, params.gSig_filt)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="motion-template") as pool:
        for it in range(passes):
            pw = bool(params.pw_rigid) and it == passes - 1
            template = _refine(sample, template, params, pw, pool, workers)
            log.debug("template pass %d/%d (%s) done", it + 1, passes, "pw-rigid" if pw else "rigid")
    return template


def _sample_runs(n_total: int, n_frames: int) -> list[tuple[int, int]]:
    """Contiguous runs ``[start, stop)`` of about ``RUN_FRAMES`` frames, ``n_frames`` in total."""
    if n_total <= n_frames:
        return [(0, n_total)]
    run = min(RUN_FRAMES, n_frames)
    n_runs = max(1, n_frames // run)
    starts = np.linspace(0, n_total - run, n_runs).round().astype(int)
    return [(int(s), int(s) + run) for s in starts]


def _median_highpass(frames: np.ndarray, gsig) -> np.ndarray:
    highpass = HighPass(frames.shape[1:], gsig)
    hp = np.stack([highpass(np.nan_to_num(np.asarray(f, dtype=np.float32))) for f in frames])
    return np.median(hp, axis=0).astype(np.float32)


def _refine(sample: np.ndarray, template: np.ndarray, params: MotionParams, pw: bool,
            pool: ThreadPoolExecutor, workers: int) -> np.ndarray:
    aligner = Aligner(template, params, pw_rigid=pw)
    n = len(sample)
    rigid = np.zeros((n, 2))
    patches: list = [None] * n
    spaces = [aligner.new_workspace() for _ in range(workers)]

    def estimate(a: int, b: int, k: int) -> None:
        for i in range(a, b):
            rigid[i], patches[i] = aligner.shifts_of(sample[i], spaces[k])

    run_chunks(pool, n, workers, estimate)
    centre = np.median(rigid, axis=0)
    h, w = template.shape

    def accumulate(a: int, b: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        total = np.zeros((h, w), np.float64)
        count = np.zeros((h, w), np.float64)
        out = np.empty((h, w), np.float32)
        valid = np.empty((h, w), np.float32)
        for i in range(a, b):
            p = None if patches[i] is None else patches[i] - centre.astype(np.float32)
            aligner.aligned_highpass(sample[i], rigid[i] - centre, p, spaces[k], out, valid)
            total += out
            count += valid
        return total, count

    parts = run_chunks(pool, n, workers, accumulate)
    total = sum(p[0] for p in parts)
    count = sum(p[1] for p in parts)
    return (total / np.maximum(count, 1.0)).astype(np.float32)
