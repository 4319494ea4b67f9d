"""Movies as the stages see them: array-likes read block by block, written block by block.

A movie is ``(frame, height, width)``. Stages never need the whole movie in memory:
they take anything sliceable along the first axis (a zarr array, a numpy array,
a memory map) and yield blocks of consecutive frames. The storage layer (zarr IO
manager, or :func:`write_movie_zarr`) consumes those blocks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol

import numpy as np

DEFAULT_BLOCK_FRAMES = 128


class FrameArray(Protocol):
    """What a stage needs of a movie: shape, dtype and slicing along frames."""

    shape: tuple[int, ...]
    dtype: Any

    def __getitem__(self, key) -> np.ndarray: ...


@dataclass(frozen=True)
class Movie:
    """A stored (or in-memory) movie with its timing.

    Attributes
    ----------
    frames : FrameArray, shape (T, H, W)
        Lazily loaded when stored in zarr.
    times : ndarray, shape (T,)
        Frame times in seconds from the start of the recording.
    frame_rate : float
        Frames per second, from the recording's timestamps (never the AVI header).
    attrs : mapping
        Anything else recorded with the movie (source, parameters, ...).
    """

    frames: FrameArray
    times: np.ndarray
    frame_rate: float
    attrs: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)  # side arrays (shifts, template, ...), lazy

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])


@dataclass
class MovieStream:
    """A movie that is produced block by block (the output of a streaming stage).

    ``blocks`` yields consecutive frame blocks whose first dimensions add up to
    ``shape[0]``. ``extras`` is called after the blocks are exhausted and returns
    small side arrays stored beside the movie (shifts, template, ...).
    """

    shape: tuple[int, int, int]
    dtype: Any
    blocks: Iterator[np.ndarray]
    times: np.ndarray
    frame_rate: float
    attrs: dict[str, Any] = field(default_factory=dict)
    extras: Callable[[], Mapping[str, np.ndarray]] | None = None
    #: called by the storage layer with the stored (lazy) movie; returns metadata to record
    describe: Callable[["Movie"], Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class MovieAlias:
    """A disabled stage's output: the same movie as its input, stored as a reference (no copy)."""

    source: Movie
    reason: str


def iter_blocks(frames: FrameArray, block_frames: int = DEFAULT_BLOCK_FRAMES,
                start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_frame_index, block)`` over frames ``[start, stop)``."""
    if block_frames < 1:
        raise ValueError(f"block_frames must be >= 1, got {block_frames}")
    stop = frames.shape[0] if stop is None else min(stop, frames.shape[0])
    for s in range(start, stop, block_frames):
        yield s, np.asarray(frames[s:min(s + block_frames, stop)])


def subsample_indices(n_frames: int, n_max: int) -> np.ndarray:
    """Evenly spaced frame indices, at most ``n_max`` of them."""
    if n_frames <= n_max:
        return np.arange(n_frames)
    return np.unique(np.linspace(0, n_frames - 1, n_max).round().astype(int))


def read_frames(frames: FrameArray, indices: np.ndarray, block_frames: int = DEFAULT_BLOCK_FRAMES) -> np.ndarray:
    """Read selected frames (sorted indices) without loading anything else."""
    indices = np.asarray(indices)
    out = np.empty((len(indices),) + tuple(frames.shape[1:]), dtype=frames.dtype)
    for i, idx in enumerate(indices):
        out[i] = frames[int(idx)]
    return out
