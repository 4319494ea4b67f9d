"""Detrending a movie, streamed over frame blocks.

Two methods, both fitted in one pass over the movie and applied lazily, so the
movie is never held in memory:

``median``
    A global photobleaching offset. With ``m_t = mean(frame_t)`` (over all
    pixels), every pixel of frame ``t`` has ``m_t - median_t(m_t)`` subtracted.
    The movie's typical level is kept; slow whole-field drifts are removed.

``linear``
    Each pixel's least-squares line over time is removed, keeping the pixel's
    mean level: with ``tc_t = t_t - mean(t)`` (frame times in seconds) the slope
    is ``b = sum_t tc_t y_t / sum_t tc_t**2`` and the output is
    ``y_t - b * tc_t``. Only ``sum_t tc_t y_t`` has to be accumulated (one pass),
    because the centred times are known before reading any frame. Unlike
    ``scipy.signal.detrend(type='linear')`` (which the original used, and which
    needs the whole movie), the pixel's mean is not removed, so the output stays
    a fluorescence and the dF/F stage can follow.

Output frames are float32. :class:`DetrendedFrames` is an array-like view
(``shape``, ``dtype``, ``view[t0:t1]``) so that the dF/F stage can read it
block by block, several times, without any intermediate movie being stored.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ace_neuro.errors import ParameterError, RawDataError
from ace_neuro.movie import DEFAULT_BLOCK_FRAMES, FrameArray, MovieStream, iter_blocks
from ace_neuro.params import DetrendParams

log = logging.getLogger(__name__)

DETREND_METHODS = ("median", "linear")


class DetrendError(RawDataError):
    """A detrending request that cannot be carried out (bad method, times or movie)."""


class DetrendParameterError(ParameterError, DetrendError):
    """A parameter value this stage cannot use; ``parameter`` names it."""


@dataclass(frozen=True)
class DetrendFit:
    """What one pass over the movie learnt; enough to detrend any frame.

    Attributes
    ----------
    method : {'median', 'linear'}
    frame_means : ndarray, shape (T,), float64
        Mean over pixels of each input frame (the whole-field trace; plotted to
        show the trend).
    offsets : ndarray, shape (T,), float64, or None
        ``median``: the value subtracted from every pixel of each frame,
        ``frame_means - median(frame_means)``. None for ``linear``.
    centred_times : ndarray, shape (T,), float64, or None
        ``linear``: frame times minus their mean, in seconds.
    slopes : ndarray, shape (H, W), float32, or None
        ``linear``: each pixel's least-squares slope, in intensity units per second.
    """

    method: str
    frame_means: np.ndarray
    offsets: np.ndarray | None = None
    centred_times: np.ndarray | None = None
    slopes: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frame_means.shape[0])

    def side_arrays(self) -> dict[str, np.ndarray]:
        """Small arrays worth storing beside the detrended movie (for plots and provenance)."""
        out = {"frame_means_before": self.frame_means}
        if self.offsets is not None:
            out["detrend_offsets"] = self.offsets
        if self.slopes is not None:
            out["detrend_slopes_per_s"] = self.slopes
        return out


def frame_means(frames: FrameArray, *, block_frames: int = DEFAULT_BLOCK_FRAMES) -> np.ndarray:
    """Mean over pixels of every frame, streamed. Returns shape (T,), float64."""
    _check_movie(frames)
    out = np.empty(int(frames.shape[0]), dtype=np.float64)
    for s, block in iter_blocks(frames, block_frames):
        out[s:s + block.shape[0]] = block.mean(axis=(1, 2), dtype=np.float64)
    return out


def fit_detrend(frames: FrameArray, method: str, *, times: np.ndarray | None = None,
                frame_rate: float | None = None, block_frames: int = DEFAULT_BLOCK_FRAMES) -> DetrendFit:
    """First pass: learn the trend of a movie.

    Parameters
    ----------
    frames : array-like, shape (T, H, W)
        Any array-like sliceable along frames (numpy, zarr, a lazy view).
    method : {'median', 'linear'}
    times : ndarray, shape (T,), optional
        Frame times in seconds; the ``linear`` fit is over these times (so dropped
        frames do not bend the line). Without them frames are taken as evenly
        spaced at ``frame_rate`` (or 1 per unit time when that is not given).
    frame_rate : float, optional
    block_frames : int

    Returns
    -------
    DetrendFit
    """
    if method not in DETREND_METHODS:
        raise DetrendParameterError(f"detrend_method = {method!r}: expected one of {DETREND_METHODS} "
                           f"(or leave it empty to skip detrending)", parameter='detrend_method')
    _check_movie(frames)
    n = int(frames.shape[0])
    if method == "median":
        means = frame_means(frames, block_frames=block_frames)
        return DetrendFit(method="median", frame_means=means, offsets=means - np.median(means))
    t = _frame_times(n, times, frame_rate)
    tc = t - t.mean()
    stt = float(np.dot(tc, tc))
    if stt == 0.0:
        raise DetrendError(f"linear detrending needs at least 2 frames at distinct times; the movie has {n}")
    tc32 = tc.astype(np.float32)
    acc = np.zeros(int(np.prod(frames.shape[1:])), dtype=np.float64)
    means = np.empty(n, dtype=np.float64)
    for s, block in iter_blocks(frames, block_frames):
        nb = block.shape[0]
        flat = block.reshape(nb, -1).astype(np.float32, copy=False)
        acc += tc32[s:s + nb] @ flat
        means[s:s + nb] = flat.mean(axis=1, dtype=np.float64)
    slopes = (acc / stt).astype(np.float32).reshape(frames.shape[1:])
    return DetrendFit(method="linear", frame_means=means, centred_times=tc, slopes=slopes)


class DetrendedFrames:
    """Lazy detrended view of a movie: ``view[t0:t1]`` reads and corrects those frames.

    Supports ``view[i]``, ``view[t0:t1(:step)]`` and those followed by spatial
    slices, like a numpy array. dtype is float32.
    """

    def __init__(self, source: FrameArray, fit: DetrendFit):
        _check_movie(source)
        if int(source.shape[0]) != fit.n_frames:
            raise DetrendError(f"the detrend fit covers {fit.n_frames} frames but the movie has {source.shape[0]}")
        if fit.slopes is not None and tuple(fit.slopes.shape) != tuple(source.shape[1:]):
            raise DetrendError(f"the detrend fit is for {fit.slopes.shape} frames but the movie's are "
                               f"{tuple(source.shape[1:])}")
        self.source = source
        self.fit = fit
        self.shape = tuple(int(s) for s in source.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = 3
        self._offsets32 = None if fit.offsets is None else fit.offsets.astype(np.float32)
        self._tc32 = None if fit.centred_times is None else fit.centred_times.astype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        frame_key, spatial, squeeze = split_frame_key(key, self.shape[0])
        idx = np.arange(self.shape[0])[frame_key]
        raw = self.source[(frame_key,) + spatial]
        per_frame = (-1,) + (1,) * (np.ndim(raw) - 1)
        if self.fit.method == "median":
            block = np.subtract(raw, self._offsets32[idx].reshape(per_frame), dtype=np.float32)
        else:
            block = np.multiply(self._tc32[idx].reshape(per_frame), self.fit.slopes[spatial], dtype=np.float32)
            np.subtract(raw, block, out=block, dtype=np.float32)
        return block[0] if squeeze else block


def split_frame_key(key: Any, n_frames: int) -> tuple[slice, tuple, bool]:
    """Split an index into (frame slice, spatial part, whether to drop the frame axis).

    An integer frame index becomes a one-frame slice (``squeeze`` True); only ints
    and slices are accepted for the frame axis.
    """
    if not isinstance(key, tuple):
        key = (key,)
    if not key:
        return slice(None), (), False
    first, spatial = key[0], tuple(key[1:])
    if any(k is Ellipsis or k is None for k in spatial):
        raise TypeError("lazy movie views accept ints and slices only (no Ellipsis or None)")
    if isinstance(first, (int, np.integer)) and not isinstance(first, bool):
        i = int(first)
        if not -n_frames <= i < n_frames:
            raise IndexError(f"frame index {i} is out of range for a movie of {n_frames} frames")
        i %= n_frames
        return slice(i, i + 1), spatial, True
    if isinstance(first, slice):
        return first, spatial, False
    raise TypeError(f"lazy movie views index frames by int or slice, not {type(first).__name__}")


def detrend_movie(frames: FrameArray, params: DetrendParams, *, times: np.ndarray, frame_rate: float,
                  block_frames: int = DEFAULT_BLOCK_FRAMES) -> MovieStream | None:
    """Detrend stage: fit (one pass, now) and a stream that applies it (second pass, lazily).

    Returns None when ``params.method`` is None (the caller passes the movie through).
    The stream's ``attrs`` record the method; ``extras()`` returns the whole-field
    trace before detrending and the per-frame offsets (median) or per-pixel
    slopes (linear).
    """
    if params.method is None:
        return None
    view = detrended_view(frames, params.method, times=times, frame_rate=frame_rate, block_frames=block_frames)
    extras = view.fit.side_arrays()
    return MovieStream(shape=view.shape, dtype=view.dtype,
                       blocks=(b for _, b in iter_blocks(view, block_frames)),
                       times=np.asarray(times), frame_rate=float(frame_rate),
                       attrs={"stage": "detrend", "detrend_method": params.method},
                       extras=lambda: extras)


def detrended_view(frames: FrameArray, method: str, *, times: np.ndarray | None = None,
                   frame_rate: float | None = None, block_frames: int = DEFAULT_BLOCK_FRAMES) -> DetrendedFrames:
    """Fit the trend (one pass) and return the lazy detrended view."""
    return DetrendedFrames(frames, fit_detrend(frames, method, times=times, frame_rate=frame_rate,
                                               block_frames=block_frames))


# --------------------------------------------------------------------------- helpers
def _check_movie(frames: FrameArray) -> None:
    shape = getattr(frames, "shape", None)
    if shape is None or len(shape) != 3:
        raise DetrendError(f"expected a movie of shape (frames, height, width), got shape {shape}")
    if int(shape[0]) < 1:
        raise DetrendError("the movie has no frames")


def _frame_times(n: int, times: np.ndarray | None, frame_rate: float | None) -> np.ndarray:
    if times is None:
        rate = 1.0 if frame_rate is None else float(frame_rate)
        if not rate > 0:
            raise DetrendError(f"frame_rate must be > 0, got {frame_rate}")
        return np.arange(n, dtype=np.float64) / rate
    t = np.asarray(times, dtype=np.float64)
    if t.shape != (n,):
        raise DetrendError(f"times has shape {t.shape} but the movie has {n} frames; pass one time per frame")
    if not np.all(np.isfinite(t)):
        raise DetrendError("times contain NaN or infinite values; fix the frame timestamps first")
    return t


__all__ = ["DetrendError", "DetrendFit", "DetrendedFrames", "frame_means", "fit_detrend",
           "detrended_view", "detrend_movie", "split_frame_key", "DETREND_METHODS"]
