"""Block-wise reading of a movie for CNMF-E: float32 blocks, optional down-sampling.

Every pass of the engine reads the movie through :class:`FrameSource`, so peak
memory is one block of frames whatever the recording length. A source is
re-iterable: each ``iter(source)`` starts a new pass.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import cv2
import numpy as np
import scipy.sparse as sp

from .errors import CnmfeInputError, CnmfeParameterError

__all__ = ["FrameSource", "downsample_space", "upsample_space", "validate_frames", "auto_block_frames"]


def validate_frame_rate(frame_rate) -> float:
    """``frame_rate`` as a positive finite float (frames per second); CnmfeParameterError otherwise."""
    try:
        rate = float(frame_rate)
    except (TypeError, ValueError):
        rate = float("nan")
    if not rate > 0 or not np.isfinite(rate):
        raise CnmfeParameterError(f"frame_rate must be a positive number of frames per second, got {frame_rate!r}")
    return rate


def validate_frames(frames, *, min_frames: int = 10, name: str = "frames") -> tuple[int, int, int]:
    """Check that ``frames`` is a (T, H, W) numeric array-like; return its shape.

    Raises
    ------
    CnmfeInputError
        If the object has no 3-D shape, a non-numeric dtype, or too few frames/pixels.
    """
    shape = getattr(frames, "shape", None)
    if shape is None or len(shape) != 3:
        raise CnmfeInputError(
            f"{name} must be a (frame, height, width) array-like sliceable along axis 0; "
            f"got shape {shape!r}. Pass the movie itself (zarr or numpy), not a list of files.")
    dtype = np.dtype(getattr(frames, "dtype", np.float32))
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise CnmfeInputError(f"{name} must hold integers or floats, got dtype {dtype}")
    T, H, W = (int(v) for v in shape)
    if T < min_frames:
        raise CnmfeInputError(f"{name} has {T} frames; CNMF-E needs at least {min_frames}")
    if H < 8 or W < 8:
        raise CnmfeInputError(f"{name} frames are {H}x{W} pixels; CNMF-E needs at least 8x8")
    return T, H, W


#: target size of one float32 block of frames (the engine holds about three at a time)
BLOCK_BYTES = 64 * 2 ** 20


def auto_block_frames(dims: tuple[int, int], *, cap: int = 128) -> int:
    """Frames per block so that one float32 block is about 64 MiB (16 to ``cap`` frames)."""
    H, W = dims
    return int(max(16, min(cap, BLOCK_BYTES // (4 * max(1, H * W)))))


def downsample_space(block: np.ndarray, s: int) -> np.ndarray:
    """Average ``s x s`` pixel tiles of (B, H, W) frames (edges padded by replication).

    Returns shape (B, ceil(H/s), ceil(W/s)), float32.
    """
    block = np.asarray(block, dtype=np.float32)
    if s == 1:
        return block
    B, H, W = block.shape
    h, w = -(-H // s), -(-W // s)
    if h * s != H or w * s != W:
        block = np.pad(block, ((0, 0), (0, h * s - H), (0, w * s - W)), mode="edge")
    out = np.zeros((B, h, w), np.float32)
    for i in range(s):
        for j in range(s):
            out += block[:, i::s, j::s]
    out *= 1.0 / (s * s)
    return out


def upsample_space(block: np.ndarray, s: int, dims: tuple[int, int]) -> np.ndarray:
    """Bilinear inverse of :func:`downsample_space`: (B, h, w) -> (B, H, W) float32."""
    block = np.asarray(block, dtype=np.float32)
    if s == 1:
        return block
    B, h, w = block.shape
    H, W = dims
    if h * s == H and w * s == W:
        out = np.empty((B, H, W), np.float32)
        for i in range(B):
            cv2.resize(block[i], (W, H), dst=out[i], interpolation=cv2.INTER_LINEAR)
        return out
    full = np.empty((B, h * s, w * s), np.float32)
    for i in range(B):
        cv2.resize(block[i], (w * s, h * s), dst=full[i], interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(full[:, :H, :W])


class FrameSource:
    """Float32 blocks of a movie, optionally averaged in time and space.

    Parameters
    ----------
    frames : array-like, shape (T, H, W)
        Anything sliceable along axis 0 (zarr array, numpy array, memmap).
    block_frames : int
        Frames read per block (rounded down to a multiple of ``tsub``).
    tsub, ssub : int
        Temporal and spatial averaging factors of the yielded blocks.
    ranges : sequence of (start, stop), optional
        Frame ranges to read (default: the whole movie). Averaging over ``tsub``
        frames never crosses a range boundary; a trailing partial group is averaged
        over the frames it has.

    Non-finite values (e.g. borders left as NaN by motion correction with
    ``border_nan='nan'``) are replaced by the pixel's mean over the block's
    finite frames (0 where a pixel has none); prefer ``border_pix`` to keep
    seeds away from such borders.
    """

    def __init__(self, frames, *, block_frames: int = 128, tsub: int = 1, ssub: int = 1,
                 ranges: Sequence[tuple[int, int]] | None = None):
        self.frames = frames
        self.tsub = int(tsub)
        self.ssub = int(ssub)
        T = int(frames.shape[0])
        self.ranges = [(0, T)] if ranges is None else [(int(a), int(b)) for a, b in ranges if b > a]
        self.block_frames = max(self.tsub, (int(block_frames) // self.tsub) * self.tsub)
        H, W = int(frames.shape[1]), int(frames.shape[2])
        self.full_dims = (H, W)
        self.dims = (-(-H // self.ssub), -(-W // self.ssub))
        self.n_frames = sum(-(-(b - a) // self.tsub) for a, b in self.ranges)
        self._float_input = np.issubdtype(np.dtype(frames.dtype), np.floating)

    @property
    def n_input_frames(self) -> int:
        """Number of movie frames read per pass."""
        return sum(b - a for a, b in self.ranges)

    def _spans(self) -> list[tuple[int, int]]:
        return [(s, min(s + self.block_frames, b)) for a, b in self.ranges for s in range(a, b, self.block_frames)]

    def _read(self, span: tuple[int, int]) -> np.ndarray:
        return np.asarray(self.frames[span[0]:span[1]], dtype=np.float32)

    def _raw_blocks(self) -> Iterator[np.ndarray]:
        """The frames of each span as float32; from storage, the next block is read (decoded) in a
        background thread while the caller computes on this one."""
        spans = self._spans()
        if isinstance(self.frames, np.ndarray) or len(spans) < 2:
            for span in spans:
                yield self._read(span)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnmfe-read") as pool:
            pending = pool.submit(self._read, spans[0])
            for nxt in spans[1:]:
                block = pending.result()
                pending = pool.submit(self._read, nxt)
                yield block
            yield pending.result()

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first output frame index, block)`` with block (b, h, w) float32."""
        t_out = 0
        for block in self._raw_blocks():
            if self._float_input:
                block = _fill_non_finite(block)
            block = _average_time(block, self.tsub)
            block = downsample_space(block, self.ssub)
            yield t_out, block
            t_out += block.shape[0]

    def output_times(self) -> np.ndarray:
        """Centre (input frame index) of every output frame, shape (n_frames,)."""
        centres = []
        for a, b in self.ranges:
            starts = np.arange(a, b, self.tsub)
            stops = np.minimum(starts + self.tsub, b)
            centres.append(0.5 * (starts + stops - 1))
        return np.concatenate(centres) if centres else np.zeros(0)


def _fill_non_finite(block: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(block)
    if not bad.any():
        return block
    cnt = (~bad).sum(axis=0)
    tot = np.where(bad, 0.0, block).sum(axis=0, dtype=np.float64)
    fill = np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0).astype(np.float32)
    return np.where(bad, fill[None], block)


def _average_time(block: np.ndarray, tsub: int) -> np.ndarray:
    if tsub == 1:
        return block
    B = block.shape[0]
    full = (B // tsub) * tsub
    parts = []
    if full:
        parts.append(block[:full].reshape(full // tsub, tsub, *block.shape[1:]).mean(axis=1, dtype=np.float32))
    if full < B:
        parts.append(block[full:].mean(axis=0, keepdims=True, dtype=np.float32))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def downsample_traces(C: np.ndarray, tsub: int, block_frames: int) -> np.ndarray:
    """Traces (K, T) averaged in time exactly as :func:`_average_time` averages blocks of ``block_frames``."""
    C = np.asarray(C, dtype=np.float32)
    if tsub == 1:
        return C
    T = C.shape[1]
    parts = [_average_time(C[:, t0:t0 + block_frames].T, tsub).T for t0 in range(0, T, int(block_frames))]
    return np.concatenate(parts, axis=1) if parts else C[:, :0]


def downsample_footprints(A, dims: tuple[int, int], s: int):
    """Footprints (H*W, K) averaged over ``s x s`` tiles as :func:`downsample_space` averages frames."""
    A = sp.csc_matrix(A)
    if s == 1:
        return A
    H, W = dims
    w = -(-W // s)
    y, x = np.divmod(np.arange(H * W), W)
    tile = (y // s) * w + (x // s)
    h = -(-H // s)
    D = sp.csr_matrix((np.full(H * W, 1.0 / (s * s), np.float32), (tile, np.arange(H * W))), shape=(h * w, H * W))
    return (D @ A).tocsc()
