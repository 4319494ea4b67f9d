"""What every raw-recording reader shares: video decoding, frame timing checks, streaming.

A reader turns a session folder into:

* :class:`RecordingInfo` - the miniscope's video files in numeric order, frame size,
  one frame rate from the timestamps, and every irregularity found (dropped frames,
  a timestamp/video frame-count mismatch) as readable warnings;
* a stream of frame blocks (``iter_blocks``) decoded chunk by chunk, so the recording
  is never held in memory;
* a frame table (frame number, time, source file, dropped-frame flags).

Concrete readers only find files and parse timestamps; decoding and the checks
live here, so every format obeys the same rules.
"""
from __future__ import annotations

import logging
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterator, Sequence

import numpy as np
import pandas as pd

from ..errors import RawDataError

log = logging.getLogger(__name__)


class ReaderError(RawDataError):
    """A raw recording that cannot be read as it is; the message names the file and what to do."""


class CorruptVideoError(ReaderError):
    """A video file that is truncated or cannot be decoded."""


@dataclass(frozen=True)
class VideoChunk:
    """One video file of the recording."""

    path: Path
    n_frames: int  # from the container header (verified while decoding)
    first_frame: int  # index of its first frame in the whole recording


@dataclass(frozen=True)
class RecordingInfo:
    """What a reader found in a session folder."""

    format: str
    session_dir: Path
    video_dir: Path
    chunks: tuple[VideoChunk, ...]
    height: int
    width: int
    dtype: str
    n_frames: int  # frames delivered (video frames that have a timestamp)
    frame_rate: float  # from timestamps; one value for every stage
    times: np.ndarray  # (n_frames,) seconds from the first frame
    frame_numbers: np.ndarray  # (n_frames,) the rig's frame numbers
    dropped_before: np.ndarray  # (n_frames,) frames missing just before each frame (0 normally)
    device: str = ""
    metadata: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def n_dropped(self) -> int:
        return int(self.dropped_before.sum())

    @property
    def duration_s(self) -> float:
        return float(self.times[-1] - self.times[0]) if self.n_frames > 1 else 0.0


def natural_key(path: Path) -> tuple:
    """Sort key that puts ``2.avi`` before ``10.avi`` and ``msCam2`` before ``msCam10``."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name))


def chunk_number(path: Path) -> int:
    """The number in a chunk's name (``2.avi`` -> 2, ``msCam10.avi`` -> 10), -1 when there is none."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else -1


def _chunk_name(like: Path, number: int) -> str:
    """The name chunk ``number`` would have, shaped like ``like`` (``msCam3.avi`` -> ``msCam2.avi``)."""
    stem = re.sub(r"\d+(?!.*\d)", str(number), like.stem)
    return stem + like.suffix


def _open_capture(path: Path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise CorruptVideoError(f"{path}: the video cannot be opened (damaged file or unsupported codec). "
                                f"Check the file plays in a video player; re-copy it from the rig if not.")
    cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    return cap


def probe_video(path: Path) -> tuple[int, int, int]:
    """(n_frames from the header, height, width) without decoding the whole file."""
    import cv2

    cap = _open_capture(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = cap.read()
        if not ok or frame is None:
            raise CorruptVideoError(f"{path}: frame 0 cannot be decoded. The file is empty or damaged; "
                                    f"re-copy it from the acquisition computer.")
        return n, int(frame.shape[0]), int(frame.shape[1])
    finally:
        cap.release()


def _to_grey(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 3:
        return frame[..., 0]
    return frame


def decode_chunk(chunk: VideoChunk, *, start: int = 0, stop: int | None = None,
                 block_frames: int = 128) -> Iterator[np.ndarray]:
    """Decode frames ``[start, stop)`` of one video file in blocks; errors name file and frame."""
    import cv2

    stop = chunk.n_frames if stop is None else stop
    cap = _open_capture(chunk.path)
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        i = start
        block = None
        filled = 0
        while i < stop:
            ok, frame = cap.read()
            if not ok or frame is None:
                raise CorruptVideoError(
                    f"{chunk.path}: frame {i} (of {chunk.n_frames} the file header announces) cannot be decoded: "
                    f"the file is truncated or damaged. Re-copy it from the acquisition computer, or leave it "
                    f"out with filenames=[...].")
            frame = _to_grey(frame)
            if block is None:
                block = np.empty((min(block_frames, stop - i),) + frame.shape, dtype=frame.dtype)
            block[filled] = frame
            filled += 1
            i += 1
            if filled == len(block):
                yield block
                block, filled = None, 0
    finally:
        cap.release()


def prefetch(blocks: Iterator, depth: int = 2) -> Iterator:
    """Run a block iterator in a background thread, ``depth`` blocks ahead.

    Video decoding releases the GIL, so decoding the next block overlaps with whatever
    the consumer does (compressing and writing the previous one). Errors are re-raised
    in the consumer; closing the consumer stops the producer.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in blocks:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer, not swallowed
            q.put(exc)

    thread = threading.Thread(target=produce, name="ace-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def detect_dropped(times_s: np.ndarray, frame_numbers: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Frames missing before each frame, from frame-number gaps or time gaps; and the frame rate.

    The frame rate counts the missing frames as periods: ``(N - 1 + dropped) / (t_last - t_first)``,
    which is the acquisition rate even when frames were dropped.
    """
    n = len(times_s)
    dropped = np.zeros(n, dtype=np.int64)
    if n < 2:
        return dropped, float("nan")
    dt = np.diff(times_s)
    if np.any(dt <= 0):
        bad = int(np.argmax(dt <= 0)) + 1
        raise ReaderError(f"timestamps are not increasing at frame {bad} "
                          f"({times_s[bad - 1]:.4f} s then {times_s[bad]:.4f} s)")
    period = float(np.median(dt))
    by_time = np.maximum(np.rint(dt / period).astype(np.int64) - 1, 0)
    by_time[dt < 1.5 * period] = 0
    dropped[1:] = by_time
    if frame_numbers is not None and len(frame_numbers) == n:
        gaps = np.diff(frame_numbers.astype(np.int64)) - 1
        dropped[1:] = np.maximum(dropped[1:], np.maximum(gaps, 0))
    total = float(times_s[-1] - times_s[0])
    rate = (n - 1 + int(dropped.sum())) / total
    return dropped, rate


class MiniscopeReader(ABC):
    """Base class of the raw-format readers (see :mod:`ace_neuro.readers.registry`)."""

    #: short name shown to users and stored with the data
    format_name: ClassVar[str] = ""
    #: what :meth:`recognises` looks for, listed when no reader recognises a folder
    looks_for: ClassVar[str] = ""
    #: number of the first video chunk (``0.avi`` -> 0, ``msCam1.avi`` -> 1); None when the
    #: format's videos are not numbered chunks of one recording
    first_chunk_number: ClassVar[int | None] = None

    def __init__(self, session_dir: str | os.PathLike, *, filenames: Sequence[str] | None = None):
        self.session_dir = Path(session_dir)
        if not self.session_dir.is_dir():
            raise ReaderError(f"{self.session_dir}: session folder not found")
        self.filenames = None if filenames is None else [str(f) for f in filenames]
        self._info: RecordingInfo | None = None

    # -- what a concrete reader provides ------------------------------------------------
    @classmethod
    @abstractmethod
    def recognises(cls, session_dir: Path) -> bool:
        """Whether this reader understands the folder (cheap: file names only)."""

    @abstractmethod
    def _video_dir_and_files(self) -> tuple[Path, list[Path]]:
        """The miniscope's own video files (no behaviour camera), any order."""

    @abstractmethod
    def _timestamps(self) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """(times in seconds, frame numbers or None, extra metadata), one row per recorded frame."""

    # -- shared machinery ---------------------------------------------------------------------
    @property
    def info(self) -> RecordingInfo:
        if self._info is None:
            self._info = self._scan()
        return self._info

    def _select(self, files: list[Path], video_dir: Path) -> list[Path]:
        files = sorted(files, key=natural_key)
        if not files:
            raise ReaderError(f"{video_dir}: no miniscope video files found ({self.looks_for}).")
        if self.filenames is None:
            return files
        by_name = {f.name: f for f in files} | {f.stem: f for f in files}
        missing = [n for n in self.filenames if n not in by_name]
        if missing:
            raise ReaderError(f"{video_dir}: filenames {missing} match no miniscope video. "
                              f"Available: {[f.name for f in files]}.")
        chosen = {by_name[n] for n in self.filenames}
        return [f for f in files if f in chosen]

    def _check_chunk_gaps(self, all_files: list[Path], files: list[Path], video_dir: Path) -> None:
        """Refuse a recording whose numbered chunks have a gap before a selected file.

        Frames are matched to the timestamps by their position in the chunk sequence; a missing
        chunk would hand its timestamps to the next file's frames.
        """
        if self.first_chunk_number is None or not all_files:
            return
        numbers = [chunk_number(f) for f in all_files]
        expected = self.first_chunk_number
        for f, n in zip(all_files, numbers):
            if n != expected:
                missing = [_chunk_name(f, k) for k in range(expected, n)]
                if any(chunk_number(g) > expected for g in files):
                    raise ReaderError(
                        f"{video_dir}: video chunk(s) {missing} are missing (before {f.name}); "
                        f"the timestamps of their frames would be given to the frames that follow. Copy the "
                        f"missing file(s) from the acquisition computer, or analyse the files before the gap "
                        f"with filenames=[...].")
                return
            expected += 1

    def _scan(self) -> RecordingInfo:
        video_dir, all_files = self._video_dir_and_files()
        all_files = sorted(all_files, key=natural_key)
        files = self._select(all_files, video_dir)
        self._check_chunk_gaps(all_files, files, video_dir)
        warnings: list[str] = []
        chunks: list[VideoChunk] = []
        shape = None
        # frames of every chunk (needed to map a selection of chunks onto the timestamps)
        counts = {}
        for f in all_files if self.filenames is not None else files:
            n, h, w = probe_video(f)
            counts[f] = n
            if f in files:
                if shape is None:
                    shape = (h, w)
                elif (h, w) != shape:
                    raise ReaderError(f"{f}: frame size {h}x{w} differs from the first video's "
                                      f"{shape[0]}x{shape[1]}. Is a behaviour-camera file mixed in?")
        offsets, first = {}, 0
        for f in all_files if self.filenames is not None else files:
            offsets[f] = first
            first += counts[f]
        total_video = first
        times, numbers, meta = self._timestamps()
        if len(times) != total_video:
            warnings.append(f"{video_dir}: the videos hold {total_video} frames but the timestamps list "
                            f"{len(times)}; using the first {min(total_video, len(times))} of both.")
        n_keep = min(total_video, len(times))
        if n_keep == 1:
            raise ReaderError(f"{video_dir}: the recording holds a single frame; measuring its frame rate (and "
                              f"any analysis over time) needs at least two. Check that the recording was "
                              f"copied whole.")
        if n_keep == 0:
            raise ReaderError(f"{video_dir}: no frame has both a video frame and a timestamp (the videos hold "
                              f"{total_video} frames, the timestamps list {len(times)}). Check that the "
                              f"recording's video and timestamp files were copied whole.")
        times = np.asarray(times[:n_keep], dtype=np.float64)
        numbers = None if numbers is None else np.asarray(numbers[:n_keep])
        dropped, rate = detect_dropped(times, numbers)
        if dropped.sum():
            where = np.flatnonzero(dropped)[:5]
            warnings.append(f"{video_dir}: {int(dropped.sum())} dropped frame(s) detected from gaps in the "
                            f"timestamps, before frame(s) {where.tolist()}{' ...' if dropped.astype(bool).sum() > 5 else ''}.")
        # keep only the selected chunks (and their timestamps)
        sel = np.zeros(n_keep, dtype=bool)
        pos = 0
        for f in files:
            a, b = offsets[f], min(offsets[f] + counts[f], n_keep)
            if b > a:
                chunks.append(VideoChunk(f, b - a, pos))
                sel[a:b] = True
                pos += b - a
        times, dropped = times[sel], dropped[sel]
        numbers = np.arange(n_keep)[sel] if numbers is None else numbers[sel]
        t0 = times[0] if len(times) else 0.0
        meta = dict(meta)
        meta["first_timestamp_s"] = float(t0)
        for w_ in warnings:
            log.warning(w_)
        return RecordingInfo(
            format=self.format_name, session_dir=self.session_dir, video_dir=video_dir, chunks=tuple(chunks),
            height=shape[0], width=shape[1], dtype="uint8", n_frames=int(sel.sum()), frame_rate=float(rate),
            times=times - t0, frame_numbers=np.asarray(numbers), dropped_before=dropped,
            device=str(meta.get("deviceType", "")), metadata=meta, warnings=tuple(warnings))

    def iter_blocks(self, block_frames: int = 128, *, background: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_frame_index, frames)`` blocks, decoding one file at a time.

        With ``background`` the next block is decoded in a thread while the caller works
        on the current one (at most two blocks in flight, so memory stays flat).
        """
        def blocks():
            for chunk in self.info.chunks:
                pos = chunk.first_frame
                for block in decode_chunk(chunk, block_frames=block_frames):
                    yield pos, block
                    pos += len(block)

        return prefetch(blocks()) if background else blocks()

    def frame_table(self) -> pd.DataFrame:
        """One row per delivered frame: index, rig frame number, time, source file, dropped flags."""
        info = self.info
        src = np.empty(info.n_frames, dtype=object)
        idx_in_file = np.empty(info.n_frames, dtype=np.int64)
        for c in info.chunks:
            src[c.first_frame:c.first_frame + c.n_frames] = c.path.name
            idx_in_file[c.first_frame:c.first_frame + c.n_frames] = np.arange(c.n_frames)
        return pd.DataFrame({
            "frame": np.arange(info.n_frames, dtype=np.int64),
            "frame_number": info.frame_numbers.astype(np.int64),
            "time_s": info.times,
            "source_file": src.astype(str),
            "frame_in_file": idx_in_file,
            "dropped_before": info.dropped_before.astype(np.int64),
            "after_drop": info.dropped_before > 0,
        })

    def read_all(self) -> np.ndarray:
        """The whole recording in memory: for small recordings and tests only."""
        return np.concatenate([b for _, b in self.iter_blocks()], axis=0)
