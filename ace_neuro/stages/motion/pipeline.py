"""Streaming NoRMCorre-style motion correction: one pass, block by block, one warp per frame."""
from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from ...movie import DEFAULT_BLOCK_FRAMES, Movie, MovieStream
from ...params import MotionParams
from .aligner import Aligner, FrameResult
from .grid import make_patch_grid
from .parallel import default_workers, submit_chunks
from .suggest import resolve_highpass
from .template import DEFAULT_TEMPLATE_FRAMES, estimate_template
from .validation import MotionCorrectionError, check_frames, check_motion_params

log = logging.getLogger(__name__)

ENGINE = "native"
RESULT_ARRAYS = ("template", "rigid_shifts", "patch_shifts", "patch_centers", "corr_before",
                 "corr_after", "residual_shift", "mean_before", "mean_after")


@dataclass(frozen=True)
class MotionResult:
    """What motion correction measured, stored beside the corrected movie.

    Attributes
    ----------
    template : ndarray, shape (H, W), float32
        Registration template of the HIGH-PASSED movie (``gSig_filt``; mean-removed movie when
        ``gSig_filt`` is None). For a picture of the field use ``mean_after``.
    rigid_shifts : ndarray, shape (T, 2), float32
        ``(dy, dx)`` px: displacement of each frame's content vs the template,
        ``observed(y, x) = template(y - dy, x - dx)``.
    patch_shifts : ndarray, shape (T, ny, nx, 2), float32, or None
        Per-patch ``(dy, dx)`` px (piecewise-rigid only).
    patch_centers : ndarray, shape (ny, nx, 2), float32, or None
        Patch centres ``(y, x)`` px.
    corr_before, corr_after : ndarray, shape (T,), float32
        Pearson correlation of each high-passed frame with the template (interior, ``max_shifts``
        margin excluded) before and after correction.
    residual_shift : ndarray, shape (T,), float32
        Length (px) of the rigid shift re-estimated on each corrected frame (~0 when correct).
    params : MotionParams
        Parameters used.
    mean_before, mean_after : ndarray, shape (H, W), float32, or None
        Mean projections of the movie before and after correction (borders copied).
    """

    template: np.ndarray
    rigid_shifts: np.ndarray
    patch_shifts: np.ndarray | None
    patch_centers: np.ndarray | None
    corr_before: np.ndarray
    corr_after: np.ndarray
    residual_shift: np.ndarray
    params: MotionParams
    mean_before: np.ndarray | None = None
    mean_after: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.rigid_shifts.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The side arrays by name (None ones omitted), as stored beside the movie."""
        return {k: getattr(self, k) for k in RESULT_ARRAYS if getattr(self, k) is not None}


def motion_result_from_arrays(arrays: Mapping[str, Any], params: MotionParams) -> MotionResult:
    """Rebuild a :class:`MotionResult` from stored side arrays (as returned by ``extras()``).

    Raises
    ------
    MotionCorrectionError
        If a required array is missing or shapes disagree.
    """
    required = ("template", "rigid_shifts", "corr_before", "corr_after", "residual_shift")
    missing = [k for k in required if k not in arrays or arrays[k] is None]
    if missing:
        raise MotionCorrectionError(f"stored motion results lack {', '.join(missing)}; re-run motion correction")
    get = {k: (None if arrays.get(k) is None else np.asarray(arrays[k])) for k in RESULT_ARRAYS}
    t = get["rigid_shifts"].shape[0]
    if get["rigid_shifts"].shape != (t, 2) or any(get[k].shape != (t,) for k in
                                                  ("corr_before", "corr_after", "residual_shift")):
        raise MotionCorrectionError("stored motion results have inconsistent frame counts; re-run motion correction")
    if (get["patch_shifts"] is None) != (get["patch_centers"] is None):
        raise MotionCorrectionError("stored motion results have patch_shifts without patch_centers (or the reverse)")
    return MotionResult(
        template=get["template"].astype(np.float32, copy=False),
        rigid_shifts=get["rigid_shifts"].astype(np.float32, copy=False),
        patch_shifts=None if get["patch_shifts"] is None else get["patch_shifts"].astype(np.float32, copy=False),
        patch_centers=None if get["patch_centers"] is None else get["patch_centers"].astype(np.float32, copy=False),
        corr_before=get["corr_before"].astype(np.float32, copy=False),
        corr_after=get["corr_after"].astype(np.float32, copy=False),
        residual_shift=get["residual_shift"].astype(np.float32, copy=False),
        params=params,
        mean_before=get["mean_before"], mean_after=get["mean_after"],
    )


def shift_field(result: MotionResult, frame: int) -> np.ndarray:
    """The displacement applied to one frame, at every pixel.

    Parameters
    ----------
    result : MotionResult
    frame : int
        Frame index.

    Returns
    -------
    ndarray, shape (2, H, W), float32
        ``(dy, dx)`` px in template coordinates: ``corrected(y, x) = observed(y + dy, x + dx)``.
    """
    h, w = result.template.shape
    if not 0 <= int(frame) < result.n_frames:
        raise IndexError(f"frame {frame} outside 0..{result.n_frames - 1}")
    if result.patch_shifts is None:
        return np.broadcast_to(result.rigid_shifts[int(frame)][:, None, None], (2, h, w)).astype(np.float32)
    grid = make_patch_grid((h, w), result.params)
    if grid.n_patches != result.patch_shifts.shape[1:3]:
        raise MotionCorrectionError("patch_shifts do not match the patch grid of these parameters")
    return grid.field(result.patch_shifts[int(frame)])


class _Accumulator:
    """Per-frame outputs of the streaming pass, filled block by block."""

    def __init__(self, n_frames: int, aligner: Aligner):
        self.n_frames = n_frames
        self.rigid = np.zeros((n_frames, 2), np.float32)
        self.patches = None
        self.centers = None
        if aligner.grid is not None:
            self.patches = np.zeros((n_frames,) + aligner.grid.n_patches + (2,), np.float32)
            self.centers = aligner.grid.centers
        self.corr_before = np.zeros(n_frames, np.float32)
        self.corr_after = np.zeros(n_frames, np.float32)
        self.residual = np.zeros(n_frames, np.float32)
        self.done = 0

    def store(self, i: int, r: FrameResult) -> None:
        self.rigid[i] = r.rigid
        if self.patches is not None:
            self.patches[i] = r.patches
        self.corr_before[i] = r.corr_before
        self.corr_after[i] = r.corr_after
        self.residual[i] = r.residual


def correct_motion(frames, params: MotionParams, *, times=None, frame_rate: float | None = None,
                   block_frames: int = DEFAULT_BLOCK_FRAMES, template: np.ndarray | None = None,
                   n_template_frames: int = DEFAULT_TEMPLATE_FRAMES,
                   n_workers: int | None = None) -> MovieStream:
    """Motion-correct a movie in one streaming pass.

    The template is estimated first from a subsample (:func:`estimate_template`); then blocks of
    ``block_frames`` frames are read, and for each frame the shifts are estimated on its
    high-passed copy (rigid, then per patch when ``pw_rigid``) and the unfiltered frame is warped
    once (``cv2.warpAffine`` for rigid, ``cv2.remap`` over a smooth field for piecewise-rigid).
    Frames are spread over ``n_workers`` threads; the next block is processed while the caller
    consumes the current one.

    Parameters
    ----------
    frames : array-like, shape (T, H, W), or Movie
        uint8 / uint16 / float movie sliceable along axis 0 (numpy, zarr). Never loaded whole.
    params : MotionParams
        ``params.enabled`` is not consulted: the caller decides whether the stage runs.
        With ``use_suggested`` (and no ``template``), ``gSig_filt`` is replaced by the observed
        footprint width (:mod:`.suggest`); otherwise a ``gSig_filt`` far from it is reported.
        ``attrs["motion_params"]`` holds the parameters used, ``attrs["notes"]`` what was decided
        and ``attrs["parameter_advice"]`` the CSV values found far from the data.
        ``upsample_factor_grid`` has no effect (shifts are interpolated to a dense field).
        ``shifts_opencv = False`` applies rigid shifts by Fourier interpolation; piecewise-rigid
        always warps with ``cv2.remap``.
    times : ndarray, shape (T,), optional
        Frame times in s (default: from ``frames`` if a Movie, else ``arange(T) / frame_rate``).
    frame_rate : float, optional
        Frames per second (default: from ``frames`` if a Movie, else from ``times``).
    block_frames : int, optional
        Frames per block (memory ~ 4 blocks of float32 frames).
    template : ndarray, shape (H, W), optional
        High-passed template to register to (e.g. ``MotionResult.template`` of another session);
        estimated from the data when omitted.
    n_template_frames : int, optional
        Frames sampled for the template.
    n_workers : int, optional
        Worker threads (default: one per core).

    Returns
    -------
    MovieStream
        float32 blocks of corrected frames; ``extras()`` (after all blocks are consumed) returns
        ``template, rigid_shifts, [patch_shifts, patch_centers], corr_before, corr_after,
        residual_shift, mean_before, mean_after`` (see :class:`MotionResult`).

    Raises
    ------
    MotionCorrectionError
        Parameters that do not fit the frame size, a bad template, or missing timing.
    """
    if isinstance(frames, Movie):
        times = frames.times if times is None else times
        frame_rate = frames.frame_rate if frame_rate is None else frame_rate
        frames = frames.frames
    t, h, w = check_frames(frames)
    check_motion_params(params, (h, w))
    if int(block_frames) < 1:
        raise MotionCorrectionError(f"block_frames = {block_frames}: expected a whole number >= 1")
    times, frame_rate = _timing(t, times, frame_rate)
    workers = default_workers(n_workers)
    if params.pw_rigid and not params.shifts_opencv:
        log.info("shifts_opencv = FALSE only changes rigid correction; piecewise-rigid shifts are "
                 "applied with cv2.remap")
    notes: list[str] = []
    advice: list[str] = []
    if template is None:
        params, notes, advice = resolve_highpass(frames, params, block_frames=int(block_frames))
        check_motion_params(params, (h, w))
        template = estimate_template(frames, params, n_frames=n_template_frames, n_workers=workers)
    else:
        template = np.asarray(template, dtype=np.float32)
        if template.shape != (h, w) or not np.isfinite(template).all():
            raise MotionCorrectionError(
                f"template of shape {template.shape} does not fit frames of {h} x {w} px (or is not finite)")
    aligner = Aligner(template, params)
    acc = _Accumulator(t, aligner)
    spaces = [aligner.new_workspace() for _ in range(workers)]

    def extras() -> dict[str, np.ndarray]:
        if acc.done < t:
            raise MotionCorrectionError(
                f"motion results requested after {acc.done} of {t} frames: consume all blocks first")
        n_bad = sum(ws.n_nonfinite for ws in spaces)
        if n_bad:
            log.warning("%d frames had non-finite pixels (replaced by the frame mean for registration)", n_bad)
        result = MotionResult(
            template=aligner.template, rigid_shifts=acc.rigid, patch_shifts=acc.patches,
            patch_centers=acc.centers, corr_before=acc.corr_before, corr_after=acc.corr_after,
            residual_shift=acc.residual, params=params,
            mean_before=(sum(ws.sum_before for ws in spaces) / t).astype(np.float32),
            mean_after=(sum(ws.sum_after for ws in spaces) / t).astype(np.float32))
        return result.arrays()

    attrs = {"engine": ENGINE, "motion_params": dataclasses.asdict(params), "notes": notes,
             "parameter_advice": advice,
             "template": "highpass" if params.gSig_filt is not None else "mean_removed"}
    return MovieStream(shape=(t, h, w), dtype=np.dtype(np.float32),
                       blocks=_stream(frames, aligner, acc, spaces, int(block_frames), workers),
                       times=times, frame_rate=frame_rate, attrs=attrs, extras=extras)


def _timing(n: int, times, frame_rate) -> tuple[np.ndarray, float]:
    if times is None and frame_rate is None:
        raise MotionCorrectionError(
            "correct_motion needs the frame timing: pass times= or frame_rate= (or a Movie)")
    if times is not None:
        times = np.asarray(times, dtype=np.float64)
        if times.shape != (n,):
            raise MotionCorrectionError(f"times has shape {times.shape}, expected ({n},) (one per frame)")
    if frame_rate is None:
        dt = np.diff(times)
        if n < 2 or not np.all(np.isfinite(dt)) or np.median(dt) <= 0:
            raise MotionCorrectionError("cannot derive frame_rate from times: pass frame_rate=")
        frame_rate = 1.0 / float(np.median(dt))
    frame_rate = float(frame_rate)
    if not np.isfinite(frame_rate) or frame_rate <= 0:
        raise MotionCorrectionError(f"frame_rate = {frame_rate}: expected a positive number of frames per second")
    if times is None:
        times = np.arange(n, dtype=np.float64) / frame_rate
    return times, frame_rate


def _stream(frames, aligner: Aligner, acc: _Accumulator, spaces: list, block_frames: int,
            workers: int) -> Iterator[np.ndarray]:
    """Yield corrected float32 blocks; block k+1 is processed while block k is consumed."""
    n = acc.n_frames
    h, w = aligner.shape

    def launch(pool: ThreadPoolExecutor, start: int):
        raw = np.asarray(frames[start:min(start + block_frames, n)])
        out = np.empty((len(raw), h, w), np.float32)

        def work(a: int, b: int, k: int) -> None:
            for i in range(a, b):
                acc.store(start + i, aligner.correct(raw[i], out[i], spaces[k]))

        return out, submit_chunks(pool, len(raw), workers, work)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="motion") as pool:
        pending = launch(pool, 0)
        for start in range(0, n, block_frames):
            out, futures = pending
            for f in futures:
                f.result()
            acc.done = start + len(out)
            nxt = start + block_frames
            pending = launch(pool, nxt) if nxt < n else None
            yield out


def correct_motion_in_memory(movie, params: MotionParams, *, block_frames: int = DEFAULT_BLOCK_FRAMES,
                             template: np.ndarray | None = None,
                             n_template_frames: int = DEFAULT_TEMPLATE_FRAMES,
                             n_workers: int | None = None) -> tuple[np.ndarray, MotionResult]:
    """Correct a small movie held in memory (tests, notebooks).

    Parameters
    ----------
    movie : ndarray, shape (T, H, W), or Movie
    params : MotionParams

    Returns
    -------
    corrected : ndarray, shape (T, H, W), float32
    result : MotionResult
    """
    frames = movie.frames if isinstance(movie, Movie) else movie
    t = check_frames(frames)[0]
    stream = correct_motion(frames, params, frame_rate=1.0, block_frames=block_frames, template=template,
                            n_template_frames=n_template_frames, n_workers=n_workers)
    corrected = np.empty(stream.shape, np.float32)
    pos = 0
    for block in stream.blocks:
        corrected[pos:pos + len(block)] = block
        pos += len(block)
    if pos != t:
        raise MotionCorrectionError(f"motion correction produced {pos} frames for {t} input frames")
    return corrected, motion_result_from_arrays(stream.extras(), params)
