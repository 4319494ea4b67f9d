"""Crop and streaming projections of a movie.

Crop coordinates follow the original pipeline's convention: ``(x0, y0, x1, y1)``
are two opposite corners of a rectangle in a frame whose origin is the
BOTTOM-left corner, with y pointing up (the original drew frames that way).
In array terms (rows from the top) the kept region is::

    rows    [H - max(y0, y1), H - min(y0, y1))
    columns [min(x0, x1),     max(x0, x1))

Example: on a 608 x 608 frame, ``(67, 503, 555, 61)`` keeps rows 105..546 and
columns 67..554, a 442 x 488 crop. Corners may be given in either order.

The projections (max, min, mean, std, median, range) are what the crop preview
and the interactive crop window show; they are computed block by block, so
memory does not grow with the recording's length.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ace_neuro.movie import DEFAULT_BLOCK_FRAMES, FrameArray, MovieStream, iter_blocks, read_frames, subsample_indices
from ace_neuro.errors import ParameterError
from ace_neuro.params import CropParams

log = logging.getLogger(__name__)

PROJECTION_KINDS = ("max", "min", "mean", "std", "median", "range")
#: Frames used for the median projection when ``n_frames`` is not given (the
#: median needs the frames in memory; 256 frames of 608 x 608 uint8 are 95 MB).
DEFAULT_MEDIAN_FRAMES = 256


class CropError(ParameterError):
    """Crop coordinates that do not describe a non-empty box inside the frame (``crop_coords``)."""

    default_fix = ("give crop corners inside the frame (x in [0, width], y in [0, height], origin bottom-left), or "
                   "leave crop_coords empty to choose them in the crop window.")

    def __init__(self, problem: str = "", **where):
        where.setdefault("parameter", "crop_coords")
        super().__init__(problem, **where)


@dataclass(frozen=True)
class CropBox:
    """A crop in array coordinates: rows ``[row0, row1)``, columns ``[col0, col1)``.

    Attributes
    ----------
    row0, row1 : int
        First kept row and one past the last (rows counted from the top).
    col0, col1 : int
        First kept column and one past the last.
    """

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def height(self) -> int:
        return self.row1 - self.row0

    @property
    def width(self) -> int:
        return self.col1 - self.col0

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the cropped frames."""
        return self.height, self.width

    @property
    def slices(self) -> tuple[slice, slice]:
        """(row slice, column slice), ready to index a frame."""
        return slice(self.row0, self.row1), slice(self.col0, self.col1)

    def to_coords(self, frame_height: int) -> tuple[int, int, int, int]:
        """The ``(x0, y0, x1, y1)`` bottom-left-origin coordinates that give this box.

        ``crop_box_from_coords(box.to_coords(H), (H, W)) == box``; used when an
        interactively chosen box is saved to ``analysis_parameters.csv``.
        """
        return (self.col0, frame_height - self.row0, self.col1, frame_height - self.row1)


def crop_box_from_coords(coords: Sequence[int], frame_shape: Sequence[int]) -> CropBox:
    """Convert ``crop_coords`` (bottom-left origin, y up) to a :class:`CropBox`.

    Parameters
    ----------
    coords : sequence of 4 ints
        ``(x0, y0, x1, y1)``: two opposite corners, in pixels, origin at the
        bottom-left of the frame, y pointing up. Either corner order.
    frame_shape : (H, W)
        Frame height and width in pixels (a full movie shape ``(T, H, W)`` is
        also accepted; its last two entries are used).

    Returns
    -------
    CropBox
        Rows ``[H - max(y0, y1), H - min(y0, y1))``, columns ``[min(x0, x1), max(x0, x1))``.

    Raises
    ------
    CropError
        When ``coords`` is not four whole numbers, a coordinate lies outside
        ``[0, W]`` x ``[0, H]``, or the box is empty. The message names the frame
        size and the coordinates.
    """
    shape = tuple(int(s) for s in frame_shape)
    if len(shape) < 2:
        raise CropError(f"frame_shape must be (height, width), got {tuple(frame_shape)!r}")
    height, width = shape[-2], shape[-1]
    if (isinstance(coords, (str, bytes)) or not hasattr(coords, "__len__") or len(coords) != 4
            or any(isinstance(c, bool) or not isinstance(c, (int, float, np.integer, np.floating))
                   or float(c) != int(c) for c in coords)):
        raise CropError(
            f"crop_coords = {coords!r}: expected four whole numbers (x0, y0, x1, y1), origin at the "
            f"bottom-left of the {height} x {width} (H x W) frame, e.g. (67, 503, 555, 61)."
        )
    x0, y0, x1, y1 = (int(c) for c in coords)
    bad = [f"{name}={v}" for name, v, hi in (("x0", x0, width), ("x1", x1, width), ("y0", y0, height),
                                             ("y1", y1, height)) if not 0 <= v <= hi]
    if bad:
        raise CropError(
            f"crop_coords {(x0, y0, x1, y1)} fall outside the {height} x {width} (H x W) frame "
            f"({', '.join(bad)}); x must lie in [0, {width}] and y in [0, {height}]."
        )
    if x0 == x1 or y0 == y1:
        raise CropError(
            f"crop_coords {(x0, y0, x1, y1)} give an empty box on the {height} x {width} (H x W) frame: "
            f"x0 and x1, and y0 and y1, must differ."
        )
    return CropBox(row0=height - max(y0, y1), row1=height - min(y0, y1),
                   col0=min(x0, x1), col1=max(x0, x1))


def _check_box_fits(box: CropBox, frame_shape: tuple[int, int]) -> None:
    height, width = frame_shape
    if not (0 <= box.row0 < box.row1 <= height and 0 <= box.col0 < box.col1 <= width):
        raise CropError(f"{box} does not fit in the {height} x {width} (H x W) frame.")


def crop_movie(frames: FrameArray, box: CropBox, *,
               block_frames: int = DEFAULT_BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Yield cropped blocks of consecutive frames, in the movie's own dtype.

    Parameters
    ----------
    frames : array-like, shape (T, H, W)
        Anything sliceable as ``frames[t0:t1, r0:r1, c0:c1]`` (numpy, zarr, memmap);
        only the cropped region of each block is read.
    box : CropBox
    block_frames : int
        Frames per yielded block.

    Yields
    ------
    ndarray, shape (<= block_frames, box.height, box.width)
    """
    _check_box_fits(box, (int(frames.shape[1]), int(frames.shape[2])))
    if block_frames < 1:
        raise ValueError(f"block_frames must be >= 1, got {block_frames}")
    rows, cols = box.slices
    n = int(frames.shape[0])
    for s in range(0, n, block_frames):
        yield np.asarray(frames[s:min(s + block_frames, n), rows, cols])


def crop_stream(frames: FrameArray, box: CropBox, *, times: np.ndarray, frame_rate: float,
                block_frames: int = DEFAULT_BLOCK_FRAMES) -> MovieStream:
    """The cropped movie as a :class:`~ace_neuro.movie.MovieStream` (times and rate passed through)."""
    _check_box_fits(box, (int(frames.shape[1]), int(frames.shape[2])))
    return MovieStream(
        shape=(int(frames.shape[0]), box.height, box.width),
        dtype=np.dtype(frames.dtype),
        blocks=crop_movie(frames, box, block_frames=block_frames),
        times=np.asarray(times),
        frame_rate=float(frame_rate),
        attrs={"stage": "crop", "crop_box": [box.row0, box.row1, box.col0, box.col1],
               "crop_coords": list(box.to_coords(int(frames.shape[1])))},
    )


def apply_crop(frames: FrameArray, params: CropParams, *, times: np.ndarray, frame_rate: float,
               block_frames: int = DEFAULT_BLOCK_FRAMES) -> MovieStream | None:
    """Crop stage for headless runs: a stream, or ``None`` when the input passes through.

    Returns ``None`` (the caller passes the movie through without a copy) when the
    stage is disabled, or when no coordinates are set (logged as a warning: a
    headless run cannot ask for a rectangle).

    Raises
    ------
    CropError
        When ``params.coords`` do not fit the frame.
    """
    if not params.enabled:
        return None
    if params.coords is None:
        log.warning("crop: no crop_coords set and no window to draw one in; the movie is not cropped")
        return None
    box = crop_box_from_coords(params.coords, frames.shape)
    return crop_stream(frames, box, times=times, frame_rate=frame_rate, block_frames=block_frames)


# --------------------------------------------------------------------------- projections
def projection(frames: FrameArray, kind: str = "max", *, n_frames: int | None = None,
               block_frames: int = DEFAULT_BLOCK_FRAMES) -> np.ndarray:
    """One projection image of a movie, computed block by block.

    Parameters
    ----------
    frames : array-like, shape (T, H, W)
    kind : {'max', 'min', 'mean', 'std', 'median', 'range'}
        'std' is the population standard deviation (ddof=0), accumulated with
        per-block means and sums of squared deviations (Chan et al.), so it is
        exact and stable. 'range' is max - min.
    n_frames : int, optional
        Use at most this many evenly spaced frames. Default: every frame, except
        for 'median', which needs its frames in memory and uses
        :data:`DEFAULT_MEDIAN_FRAMES` evenly spaced frames.
    block_frames : int

    Returns
    -------
    ndarray, shape (H, W)
        float64 for 'mean', 'std' and 'median'; the movie's dtype for 'max' and
        'min'; for 'range' the movie's dtype widened so that max - min cannot wrap.
    """
    if kind not in PROJECTION_KINDS:
        raise ValueError(f"projection kind {kind!r} is not one of {PROJECTION_KINDS}")
    n_total = int(frames.shape[0])
    if n_total == 0:
        raise ValueError("cannot project a movie with no frames")
    if n_frames is not None and n_frames < 1:
        raise ValueError(f"n_frames must be >= 1 or None, got {n_frames}")
    if kind == "median":
        idx = subsample_indices(n_total, DEFAULT_MEDIAN_FRAMES if n_frames is None else n_frames)
        return np.median(read_frames(frames, idx), axis=0)
    acc = _Accumulator()
    for block in _projection_blocks(frames, n_frames, block_frames):
        if kind in ("max", "min", "range"):
            acc.add_extrema(block)
        else:
            acc.add_moments(block)
    return getattr(acc, kind)


def _projection_blocks(frames: FrameArray, n_frames: int | None, block_frames: int) -> Iterator[np.ndarray]:
    n_total = int(frames.shape[0])
    if n_frames is None or n_frames >= n_total:
        for _, block in iter_blocks(frames, block_frames):
            yield block
        return
    idx = subsample_indices(n_total, n_frames)
    for s in range(0, len(idx), block_frames):
        yield read_frames(frames, idx[s:s + block_frames])


class _Accumulator:
    """Running max, min, mean and sum of squared deviations over frame blocks.

    Means and squared deviations are merged block by block (Chan, Golub & LeVeque),
    which is exact and numerically stable, in float64.
    """

    def __init__(self) -> None:
        self.max = self.min = self.mean = self.m2 = None
        self.count = 0

    def add_extrema(self, block: np.ndarray) -> None:
        bmx, bmn = block.max(axis=0), block.min(axis=0)
        self.max = bmx if self.max is None else np.maximum(self.max, bmx)
        self.min = bmn if self.min is None else np.minimum(self.min, bmn)

    def add_moments(self, block: np.ndarray) -> None:
        b = block.astype(np.float64)
        nb = b.shape[0]
        bmean = b.mean(axis=0)
        bm2 = ((b - bmean) ** 2).sum(axis=0)
        if self.mean is None:
            self.mean, self.m2, self.count = bmean, bm2, nb
            return
        delta = bmean - self.mean
        total = self.count + nb
        self.mean = self.mean + delta * (nb / total)
        self.m2 = self.m2 + bm2 + delta ** 2 * (self.count * nb / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count)

    @property
    def range(self) -> np.ndarray:
        wide = np.promote_types(self.max.dtype, np.int64) if self.max.dtype.kind in "iub" else self.max.dtype
        return self.max.astype(wide) - self.min.astype(wide)


@dataclass(frozen=True)
class Projections:
    """The projection images the crop preview and the crop window offer (each (H, W))."""

    max: np.ndarray
    min: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    median: np.ndarray
    range: np.ndarray

    def get(self, kind: str) -> np.ndarray:
        if kind not in PROJECTION_KINDS:
            raise ValueError(f"projection kind {kind!r} is not one of {PROJECTION_KINDS}")
        return getattr(self, kind)


def compute_projections(frames: FrameArray, *, n_frames: int | None = None,
                        median_frames: int = DEFAULT_MEDIAN_FRAMES,
                        block_frames: int = DEFAULT_BLOCK_FRAMES) -> Projections:
    """Every projection in one pass over the movie (plus a subsample for the median).

    Parameters are as in :func:`projection`; ``median_frames`` caps the frames
    held in memory for the median.
    """
    n_total = int(frames.shape[0])
    if n_total == 0:
        raise ValueError("cannot project a movie with no frames")
    acc = _Accumulator()
    for block in _projection_blocks(frames, n_frames, block_frames):
        acc.add_extrema(block)
        acc.add_moments(block)
    n_med = median_frames if n_frames is None else min(n_frames, median_frames)
    median = np.median(read_frames(frames, subsample_indices(n_total, n_med)), axis=0)
    return Projections(max=acc.max, min=acc.min, mean=acc.mean, std=acc.std, median=median, range=acc.range)


__all__ = ["CropError", "CropBox", "crop_box_from_coords", "crop_movie", "crop_stream", "apply_crop",
           "projection", "compute_projections", "Projections", "PROJECTION_KINDS"]
