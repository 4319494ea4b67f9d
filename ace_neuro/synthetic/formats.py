"""Write synthetic recordings as complete raw session folders, in the rigs' own layouts.

Three formats:

* :func:`write_ucla_v4_session` - UCLA Miniscope DAQ software (``Miniscope/0.avi, 1.avi, ...``,
  ``timeStamps.csv``, device and session ``metaData.json``, ``notes.csv``, a behaviour camera);
* :func:`write_ucla_v3_legacy_session` - the legacy V3 software (``msCam1.avi, ...``,
  ``behavCam1.avi``, tab-separated ``timestamp.dat``);
* :func:`write_onix_session` - ONIX with a V4 headstage (``start-time_<n>_miniscope.csv``,
  ``ucla-miniscope-v4-clock_<n>.raw``, ``ucla-miniscope-v4-video_<n>.avi``).

:func:`write_ucla_v4_frames` writes the UCLA DAQ layout from frames and frame times rendered
elsewhere (another simulator's movie), without a ground truth of this package.

Frames are rendered block by block from a :class:`~ace_neuro.synthetic.model.GroundTruth`
and written straight to lossless 8-bit grey AVIs (FFV1 or GREY), so memory does not
grow with the recording. As on the real rigs, the AVI header claims 60 fps whatever
the real rate; the real frame times (with sub-millisecond jitter) are in the
timestamp files. A session is written into a hidden sibling folder and renamed into
place when complete, so a folder watcher never sees half a session.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from ace_neuro.errors import ParameterError
from ace_neuro.synthetic.model import GroundTruth, render_frames

log = logging.getLogger(__name__)

AVI_HEADER_FPS = 60.0
CODECS = ("FFV1", "GREY")
BEHAVIOUR_SIZE = (240, 320)  # (height, width) of the decoy behaviour camera
_TAG_TIMESTAMPS = 101
_TAG_BEHAVIOUR = 102
_START = _dt.datetime(2023, 9, 1, 10, 15, 30, 123000)


class SyntheticFormatError(ParameterError):
    """A writer option that cannot be honoured; the message names it and what to do."""


# --------------------------------------------------------------------------- shared pieces
def _check_codec(codec: str) -> str:
    if codec not in CODECS:
        raise SyntheticFormatError(f"codec = {codec!r}: give one of {CODECS} (lossless 8-bit grey)")
    return codec


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SyntheticFormatError(f"{name} = {value!r}: give a whole number >= 1")
    return int(value)


def _check_drops(truth: GroundTruth, drop_frames: Iterable[int]) -> frozenset[int]:
    drops = set()
    for f in drop_frames:
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not 0 <= f < truth.n_frames:
            raise SyntheticFormatError(
                f"drop_frames contains {f!r}: give frame indices in [0, {truth.n_frames})")
        drops.add(int(f))
    if len(drops) >= truth.n_frames:
        raise SyntheticFormatError("drop_frames drops every frame: keep at least one")
    return frozenset(drops)


def _check_extra(timestamp_extra_rows) -> int:
    if isinstance(timestamp_extra_rows, bool) or not isinstance(timestamp_extra_rows, (int, np.integer)) \
            or timestamp_extra_rows < 0:
        raise SyntheticFormatError(f"timestamp_extra_rows = {timestamp_extra_rows!r}: give a whole number >= 0")
    return int(timestamp_extra_rows)


def _timing_rng(truth: GroundTruth, salt: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([truth.config.seed, _TAG_TIMESTAMPS, salt]))


def frame_times_s(truth: GroundTruth, *, n_extra: int = 0, jitter_ms: float = 0.4, salt: int = 0) -> np.ndarray:
    """Acquisition times (s from the first frame) of every frame plus ``n_extra`` more.

    Nominal ``i / frame_rate`` plus Gaussian jitter of ``jitter_ms`` (clipped to 3 sd,
    first frame exactly 0), reproducible from the truth's seed. Shape (T + n_extra,).
    """
    n = truth.n_frames + n_extra
    rng = _timing_rng(truth, salt)
    jitter = np.clip(rng.normal(0.0, jitter_ms, size=n), -3 * jitter_ms, 3 * jitter_ms) / 1000.0
    jitter[0] = 0.0
    return np.arange(n) / truth.frame_rate + jitter


def _kept_times(truth: GroundTruth, drops: frozenset[int], extra: int, salt: int) -> np.ndarray:
    times = frame_times_s(truth, n_extra=extra, salt=salt)
    keep = np.ones(times.size, dtype=bool)
    keep[list(drops)] = False
    return times[keep]


class _ChunkedAviWriter:
    """Grey 8-bit AVIs, a new file every ``frames_per_file`` frames, named by ``name_of(i)``."""

    def __init__(self, name_of: Callable[[int], Path], frames_per_file: int, codec: str,
                 frame_shape: tuple[int, int]):
        self.name_of = name_of
        self.frames_per_file = frames_per_file
        self.fourcc = cv2.VideoWriter_fourcc(*codec)
        self.codec = codec
        self.size = (int(frame_shape[1]), int(frame_shape[0]))  # OpenCV wants (width, height)
        self.n_written = 0
        self.paths: list[Path] = []
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        if self.n_written % self.frames_per_file == 0:
            self._open(self.n_written // self.frames_per_file)
        self._writer.write(np.ascontiguousarray(frame, dtype=np.uint8))
        self.n_written += 1

    def _open(self, index: int) -> None:
        self.close()
        path = self.name_of(index)
        writer = cv2.VideoWriter(str(path), self.fourcc, AVI_HEADER_FPS, self.size, isColor=False)
        if not writer.isOpened():
            raise SyntheticFormatError(f"OpenCV cannot write {path} with codec {self.codec!r}; "
                                       f"try codec='GREY' (uncompressed)")
        self._writer = writer
        self.paths.append(path)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> "_ChunkedAviWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _write_miniscope_video(truth: GroundTruth, drops: frozenset[int], writer: _ChunkedAviWriter,
                           block_frames: int) -> int:
    with writer:
        for s in range(0, truth.n_frames, block_frames):
            e = min(s + block_frames, truth.n_frames)
            block = render_frames(truth, s, e)
            for i in range(e - s):
                if s + i not in drops:
                    writer.write(block[i])
    return writer.n_written


def behaviour_frames(truth: GroundTruth, n_frames: int) -> np.ndarray:
    """Decoy behaviour-camera frames (a bright blob moving over a gradient), (n, 240, 320) uint8."""
    h, w = BEHAVIOUR_SIZE
    rng = np.random.default_rng(np.random.SeedSequence([truth.config.seed, _TAG_BEHAVIOUR]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 40 + 60 * xx / w + 20 * yy / h
    out = np.empty((n_frames, h, w), dtype=np.uint8)
    pos = np.array([h / 2, w / 2])
    for i in range(n_frames):
        pos = np.clip(pos + rng.normal(0, 6, 2), 20, [h - 20, w - 20])
        blob = 120 * np.exp(-((yy - pos[0]) ** 2 + (xx - pos[1]) ** 2) / (2 * 15.0 ** 2))
        out[i] = np.clip(base + blob, 0, 255).astype(np.uint8)
    return out


class _StagedDir:
    """Write into a hidden sibling folder; rename it to ``target`` only when complete."""

    def __init__(self, target: Path):
        self.target = Path(target)
        if self.target.exists() and (not self.target.is_dir() or any(self.target.iterdir())):
            raise SyntheticFormatError(f"session folder {self.target} already exists and is not empty: "
                                       f"give a new or empty folder")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.target.parent / f".{self.target.name}.partial-{os.getpid()}"

    def __enter__(self) -> Path:
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.target.exists():
            self.target.rmdir()  # empty (checked above)
        self.tmp.rename(self.target)


def _recording_start_time() -> dict:
    t = _START
    epoch_ms = int(t.replace(tzinfo=_dt.timezone.utc).timestamp() * 1000)
    return {"day": t.day, "hour": t.hour, "minute": t.minute, "month": t.month,
            "msec": t.microsecond // 1000, "msecSinceEpoch": epoch_ms, "second": t.second, "year": t.year}


def _frame_rate_text(frame_rate: float) -> str:
    return f"{int(round(frame_rate))}FPS"


# --------------------------------------------------------------------------- UCLA DAQ (V4)
def write_ucla_v4_session(session_dir: str | Path, truth: GroundTruth, *, frames_per_file: int = 1000,
                          codec: str = "FFV1", first_timestamp_ms: float = -12.0,
                          drop_frames: Sequence[int] = (), behaviour_camera: bool = True,
                          timestamp_extra_rows: int = 0, device_type: str = "Miniscope_V4_BNO",
                          device_name: str = "Miniscope", frame_rate_text: str | float | None = None,
                          daq_frame_number: bool = False, behaviour_n_frames: int = 10,
                          block_frames: int = 200) -> Path:
    """Write a UCLA Miniscope DAQ session folder.

    Layout::

        <session>/metaData.json              researcherName, experimentName, recordingStartTime,
                                             cameras, miniscopes
        <session>/notes.csv                  Time Stamp (ms),Note
        <session>/<device_name>/0.avi, ...   a new file every frames_per_file frames
        <session>/<device_name>/metaData.json
        <session>/<device_name>/timeStamps.csv   Frame Number,Time Stamp (ms),Buffer Index
        <session>/BehavCam_1/0.avi, metaData.json, timeStamps.csv   (decoy, 320x240)

    Parameters
    ----------
    session_dir : path
        Folder to create (must not exist, or be empty).
    truth : GroundTruth
        The recording to write; frames are rendered block by block.
    frames_per_file : int
        Frames per AVI (the DAQ's ``framesPerFile``).
    codec : {'FFV1', 'GREY'}
        Lossless 8-bit grey codec; recorded as ``compression`` in the device metadata.
    first_timestamp_ms : float
        Time stamp of the first written frame (the DAQ's first stamp is often negative).
        Stamps are whole milliseconds, as the DAQ writes them.
    drop_frames : sequence of int
        Frame indices of the truth left out of both the video and the timestamps (their
        times leave a gap; ``Frame Number`` stays consecutive as the DAQ numbers what it
        received, unless ``daq_frame_number`` adds the sensor's own count, which skips).
    behaviour_camera : bool
        Also write the decoy ``BehavCam_1`` device folder.
    timestamp_extra_rows : int
        Rows appended to ``timeStamps.csv`` with no video frame (a count mismatch).
    device_type, device_name : str
        ``deviceType`` and device folder/``deviceName``.
    frame_rate_text : str or float, optional
        ``frameRate`` in the device metadata; default the nearest preset, e.g. ``"30FPS"``.
    daq_frame_number : bool
        Add the newer builds' ``DAQ Frame Number`` column.
    behaviour_n_frames : int
        Frames of the decoy behaviour camera.
    block_frames : int
        Frames rendered at a time (memory bound).

    Returns
    -------
    Path
        The session folder.
    """
    codec = _check_codec(codec)
    frames_per_file = _check_positive_int("frames_per_file", frames_per_file)
    block_frames = _check_positive_int("block_frames", block_frames)
    drops = _check_drops(truth, drop_frames)
    extra = _check_extra(timestamp_extra_rows)
    _check_device_name(device_name)
    session_dir = Path(session_dir)
    with _StagedDir(session_dir) as tmp:
        dev = tmp / device_name
        dev.mkdir()
        writer = _ChunkedAviWriter(lambda i: dev / f"{i}.avi", frames_per_file, codec, truth.frame_shape)
        n_written = _write_miniscope_video(truth, drops, writer, block_frames)
        kept = np.array([i for i in range(truth.n_frames) if i not in drops] +
                        list(range(truth.n_frames, truth.n_frames + extra)))
        times_ms = np.rint(first_timestamp_ms + 1000.0 * _kept_times(truth, drops, extra, salt=0)).astype(np.int64)
        _write_daq_device_files(dev, session_dir, truth.frame_shape, times_ms, _timing_rng(truth, 1),
                                codec=codec, frames_per_file=frames_per_file, device_type=device_type,
                                frame_rate_text=_frame_rate_text(truth.frame_rate) if frame_rate_text is None
                                else frame_rate_text,
                                daq_frame_numbers=kept + 1 if daq_frame_number else None)
        cameras = []
        if behaviour_camera:
            cameras.append("BehavCam_1")
            _write_daq_behaviour_camera(tmp / "BehavCam_1", truth, behaviour_n_frames, first_timestamp_ms)
        _write_daq_session_files(tmp, session_dir, device_name, cameras)
    log.info("wrote UCLA DAQ session %s: %d frames in %d files (%s), %d dropped, %d extra timestamp rows",
             session_dir, n_written, len(writer.paths), codec, len(drops), extra)
    return session_dir


def write_ucla_v4_frames(session_dir: str | Path, blocks: Iterable[np.ndarray], times_s: Sequence[float], *,
                         frame_rate: float, frames_per_file: int = 1000, codec: str = "FFV1",
                         first_timestamp_ms: float = -12.0, device_type: str = "Miniscope_V4_BNO",
                         device_name: str = "Miniscope", seed: int = 0) -> Path:
    """Write a UCLA Miniscope DAQ session folder from frames rendered elsewhere.

    The layout of :func:`write_ucla_v4_session` (device folder with ``0.avi, 1.avi, ...``,
    ``timeStamps.csv`` and ``metaData.json``; session ``metaData.json`` and ``notes.csv``),
    without a behaviour camera, for a movie that is not a
    :class:`~ace_neuro.synthetic.model.GroundTruth` of this package (e.g. another simulator's).

    Parameters
    ----------
    session_dir : path
        Folder to create (must not exist, or be empty).
    blocks : iterable of ndarray, shape (B, H, W), uint8
        The movie, a block of frames at a time (memory stays at one block).
    times_s : sequence of float
        Acquisition time of every frame, seconds from the first; as many as there are frames.
    frame_rate : float
        Nominal rate, written as the device's ``frameRate`` preset (e.g. ``"20FPS"``).
    frames_per_file, codec, first_timestamp_ms, device_type, device_name
        As in :func:`write_ucla_v4_session`.
    seed : int
        Seed of the ``Buffer Index`` column of ``timeStamps.csv``.

    Returns
    -------
    Path
        The session folder.

    Raises
    ------
    SyntheticFormatError
        If a block is not uint8 (B, H, W) of one frame size, or the frame count differs from
        ``len(times_s)``.
    """
    codec = _check_codec(codec)
    frames_per_file = _check_positive_int("frames_per_file", frames_per_file)
    _check_device_name(device_name)
    times_s = np.asarray(times_s, dtype=np.float64)
    session_dir = Path(session_dir)
    with _StagedDir(session_dir) as tmp:
        dev = tmp / device_name
        dev.mkdir()
        n_written, frame_shape = _write_frame_blocks(blocks, lambda i: dev / f"{i}.avi", frames_per_file, codec)
        if n_written != times_s.size:
            raise SyntheticFormatError(f"{n_written} frames were given but {times_s.size} frame times: "
                                       f"give one time per frame")
        times_ms = np.rint(first_timestamp_ms + 1000.0 * (times_s - times_s[0])).astype(np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), _TAG_TIMESTAMPS, 1]))
        _write_daq_device_files(dev, session_dir, frame_shape, times_ms, rng, codec=codec,
                                frames_per_file=frames_per_file, device_type=device_type,
                                frame_rate_text=_frame_rate_text(frame_rate))
        _write_daq_session_files(tmp, session_dir, device_name, [])
    log.info("wrote UCLA DAQ session %s: %d frames (%s)", session_dir, n_written, codec)
    return session_dir


def _check_device_name(device_name: str) -> None:
    if not device_name or any(c in device_name for c in "/\\"):
        raise SyntheticFormatError(f"device_name = {device_name!r}: give a plain folder name")


def _write_frame_blocks(blocks: Iterable[np.ndarray], name_of: Callable[[int], Path], frames_per_file: int,
                        codec: str) -> tuple[int, tuple[int, int]]:
    """Write uint8 (B, H, W) blocks to chunked AVIs; ``(frames written, (H, W))``."""
    writer, frame_shape = None, None
    try:
        for block in blocks:
            block = np.asarray(block)
            if block.dtype != np.uint8 or block.ndim != 3 or (frame_shape and block.shape[1:] != frame_shape):
                raise SyntheticFormatError(f"a block of {block.dtype} {block.shape}: give uint8 (B, H, W) blocks "
                                           f"of one frame size")
            if writer is None:
                frame_shape = (int(block.shape[1]), int(block.shape[2]))
                writer = _ChunkedAviWriter(name_of, frames_per_file, codec, frame_shape)
            for frame in block:
                writer.write(frame)
    finally:
        if writer is not None:
            writer.close()
    if writer is None or writer.n_written == 0:
        raise SyntheticFormatError("no frames were given: give at least one block of frames")
    return writer.n_written, frame_shape


def _write_daq_device_files(dev: Path, session_dir: Path, frame_shape: tuple[int, int], times_ms: np.ndarray,
                            rng: np.random.Generator, *, codec: str, frames_per_file: int, device_type: str,
                            frame_rate_text: str | float, daq_frame_numbers: np.ndarray | None = None) -> None:
    """The miniscope device folder's ``timeStamps.csv`` and ``metaData.json``."""
    buffer_index = rng.integers(0, 4, size=times_ms.size)
    header = "Frame Number,Time Stamp (ms),Buffer Index" + (",DAQ Frame Number" if daq_frame_numbers is not None
                                                            else "")
    lines = [header]
    for row, (t_ms, b) in enumerate(zip(times_ms, buffer_index)):
        lines.append(f"{row},{t_ms},{b}" + (f",{daq_frame_numbers[row]}" if daq_frame_numbers is not None else ""))
    (dev / "timeStamps.csv").write_text("\n".join(lines) + "\n")
    h, w = frame_shape
    device_meta = {
        "ROI": {"height": h, "leftEdge": 0, "topEdge": 0, "width": w},
        "compression": codec, "deviceDirectory": str(session_dir / dev.name), "deviceID": 0,
        "deviceName": dev.name, "deviceType": device_type, "ewl": 0, "frameRate": frame_rate_text,
        "framesPerFile": frames_per_file, "gain": "Low", "led0": 20,
    }
    (dev / "metaData.json").write_text(json.dumps(device_meta, indent=4))


def _write_daq_session_files(tmp: Path, session_dir: Path, device_name: str, cameras: list[str]) -> None:
    """The session folder's ``metaData.json`` and ``notes.csv``."""
    session_meta = {
        "animalName": "synthetic", "baseDirectory": str(session_dir), "cameras": cameras,
        "experimentName": "ace_neuro synthetic recording", "miniscopes": [device_name],
        "recordingStartTime": _recording_start_time(), "researcherName": "ace_neuro.synthetic",
    }
    (tmp / "metaData.json").write_text(json.dumps(session_meta, indent=4))
    (tmp / "notes.csv").write_text("Time Stamp (ms),Note\n1000,synthetic recording (ace_neuro.synthetic)\n")


def _write_daq_behaviour_camera(folder: Path, truth: GroundTruth, n_frames: int, first_ms: float) -> None:
    n_frames = _check_positive_int("behaviour_n_frames", n_frames)
    folder.mkdir()
    frames = behaviour_frames(truth, n_frames)
    with _ChunkedAviWriter(lambda i: folder / f"{i}.avi", 1000, "FFV1", BEHAVIOUR_SIZE) as writer:
        for f in frames:
            writer.write(f)
    period_ms = 1000.0 / 30.0
    lines = ["Frame Number,Time Stamp (ms),Buffer Index"]
    lines += [f"{i},{int(round(first_ms + 3 + i * period_ms))},0" for i in range(n_frames)]
    (folder / "timeStamps.csv").write_text("\n".join(lines) + "\n")
    meta = {"cameraCalibrationFileLocation": "", "compression": "FFV1", "deviceDirectory": str(folder.name),
            "deviceID": 1, "deviceName": "BehavCam_1", "deviceType": "WebCam-320x240",
            "frameRate": "30FPS", "framesPerFile": 1000}
    (folder / "metaData.json").write_text(json.dumps(meta, indent=4))


# --------------------------------------------------------------------------- legacy V3
def write_ucla_v3_legacy_session(session_dir: str | Path, truth: GroundTruth, *, frames_per_file: int = 1000,
                                 codec: str = "GREY", drop_frames: Sequence[int] = (),
                                 behaviour_camera: bool = True, timestamp_extra_rows: int = 0,
                                 behaviour_n_frames: int = 10, block_frames: int = 200) -> Path:
    """Write a legacy (V3 software) session folder.

    Layout::

        <session>/msCam1.avi, msCam2.avi, ...   1-based, frames_per_file each
        <session>/behavCam1.avi                 decoy behaviour camera (320x240)
        <session>/timestamp.dat                 camNum<TAB>frameNum<TAB>sysClock<TAB>buffer

    ``timestamp.dat`` interleaves both cameras by time: miniscope ``camNum`` 1,
    behaviour ``camNum`` 0, ``frameNum`` 1-based per camera, ``sysClock`` whole ms
    from the first row (0), ``buffer`` small ints. The frame size follows the truth
    (the real V3 sensor is 752x480). Options as :func:`write_ucla_v4_session`.

    Returns
    -------
    Path
        The session folder.
    """
    codec = _check_codec(codec)
    frames_per_file = _check_positive_int("frames_per_file", frames_per_file)
    block_frames = _check_positive_int("block_frames", block_frames)
    drops = _check_drops(truth, drop_frames)
    extra = _check_extra(timestamp_extra_rows)
    session_dir = Path(session_dir)
    with _StagedDir(session_dir) as tmp:
        writer = _ChunkedAviWriter(lambda i: tmp / f"msCam{i + 1}.avi", frames_per_file, codec, truth.frame_shape)
        n_written = _write_miniscope_video(truth, drops, writer, block_frames)
        scope_ms = 1000.0 * _kept_times(truth, drops, extra, salt=0)
        rng = _timing_rng(truth, 2)
        rows = [(t, 1, i + 1, int(rng.integers(0, 4))) for i, t in enumerate(scope_ms)]
        if behaviour_camera:
            n_b = _check_positive_int("behaviour_n_frames", behaviour_n_frames)
            with _ChunkedAviWriter(lambda i: tmp / f"behavCam{i + 1}.avi", frames_per_file, "FFV1",
                                   BEHAVIOUR_SIZE) as bw:
                for f in behaviour_frames(truth, n_b):
                    bw.write(f)
            span = scope_ms[-1] if scope_ms.size > 1 else 1000.0
            behav_ms = np.linspace(0.0, span, n_b) + 7.0
            rows += [(t, 0, i + 1, int(rng.integers(0, 4))) for i, t in enumerate(behav_ms)]
        rows.sort(key=lambda r: (r[0], r[1]))
        t0 = rows[0][0]
        lines = ["camNum\tframeNum\tsysClock\tbuffer"]
        lines += [f"{cam}\t{num}\t{int(round(t - t0))}\t{buf}" for t, cam, num, buf in rows]
        (tmp / "timestamp.dat").write_text("\n".join(lines) + "\n")
    log.info("wrote legacy V3 session %s: %d frames in %d files, %d dropped, %d extra timestamp rows",
             session_dir, n_written, len(writer.paths), len(drops), extra)
    return session_dir


# --------------------------------------------------------------------------- ONIX
def write_onix_session(session_dir: str | Path, truth: GroundTruth, *, index: int = 0,
                       clock_hz: int = 250_000_000, codec: str = "FFV1", drop_frames: Sequence[int] = (),
                       timestamp_extra_rows: int = 0, first_tick: int = 3_217_654_321_000,
                       start_time: str = "2023-09-01T10:15:30.1234567-07:00", block_read_size: int = 4096,
                       block_write_size: int = 4096, block_frames: int = 200) -> Path:
    """Write an ONIX (Open Ephys) session folder with a UCLA V4 headstage.

    Layout::

        <session>/start-time_<index>_miniscope.csv     one row, no header:
                                                       ISO time,clock Hz,block read,block write
        <session>/ucla-miniscope-v4-clock_<index>.raw  little-endian uint64 ticks, one per frame
        <session>/ucla-miniscope-v4-video_<index>.avi  the whole video in one file

    Ticks are ``first_tick + time * clock_hz`` with the frame times of
    :func:`frame_times_s` (dropped frames leave a gap; ``timestamp_extra_rows`` appends
    ticks with no video frame).

    Returns
    -------
    Path
        The session folder.
    """
    codec = _check_codec(codec)
    block_frames = _check_positive_int("block_frames", block_frames)
    clock_hz = _check_positive_int("clock_hz", clock_hz)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise SyntheticFormatError(f"index = {index!r}: give a whole number >= 0")
    if isinstance(first_tick, bool) or not isinstance(first_tick, (int, np.integer)) or first_tick < 0:
        raise SyntheticFormatError(f"first_tick = {first_tick!r}: give a whole number >= 0")
    drops = _check_drops(truth, drop_frames)
    extra = _check_extra(timestamp_extra_rows)
    session_dir = Path(session_dir)
    with _StagedDir(session_dir) as tmp:
        writer = _ChunkedAviWriter(lambda i: tmp / f"ucla-miniscope-v4-video_{index}.avi",
                                   truth.n_frames + 1, codec, truth.frame_shape)
        n_written = _write_miniscope_video(truth, drops, writer, block_frames)
        times = _kept_times(truth, drops, extra, salt=0)
        ticks = np.uint64(first_tick) + np.rint(times * clock_hz).astype(np.uint64)
        ticks.astype("<u8").tofile(tmp / f"ucla-miniscope-v4-clock_{index}.raw")
        (tmp / f"start-time_{index}_miniscope.csv").write_text(
            f"{start_time},{clock_hz},{block_read_size},{block_write_size}\n")
    log.info("wrote ONIX session %s: %d frames, %d dropped, %d extra ticks", session_dir, n_written,
             len(drops), extra)
    return session_dir


# --------------------------------------------------------------------------- helpers
def corrupt_video(path: str | Path, keep_bytes: int) -> Path:
    """Truncate an AVI to its first ``keep_bytes`` bytes (for reader error tests)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    size = path.stat().st_size
    if isinstance(keep_bytes, bool) or not isinstance(keep_bytes, (int, np.integer)) or not 0 <= keep_bytes < size:
        raise SyntheticFormatError(f"keep_bytes = {keep_bytes!r}: give a whole number in [0, {size}) "
                                   f"(the size of {path.name})")
    with open(path, "r+b") as f:
        f.truncate(int(keep_bytes))
    return path


WRITERS: dict[str, Callable[..., Path]] = {
    "ucla_v4": write_ucla_v4_session,
    "ucla_v3_legacy": write_ucla_v3_legacy_session,
    "onix": write_onix_session,
}


def avi_header(path: str | Path) -> dict:
    """Codec fourcc, frame rate, frame count and size declared in an AVI's headers (no decoding).

    Returns a dict with ``fourcc`` (str), ``fps`` (dwRate / dwScale of the video stream),
    ``n_frames`` (avih dwTotalFrames), ``width`` and ``height``.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(16384)
    if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        raise SyntheticFormatError(f"{path} is not an AVI file")
    avih = head.find(b"avih")
    strh = head.find(b"strh")
    if avih < 0 or strh < 0:
        raise SyntheticFormatError(f"{path}: AVI headers not found in the first 16 KiB")
    ints = np.frombuffer(head[avih + 8:avih + 8 + 40], dtype="<u4")
    scale, rate = np.frombuffer(head[strh + 8 + 20:strh + 8 + 28], dtype="<u4")
    return {"fourcc": head[strh + 12:strh + 16].decode("latin-1"),
            "fps": float(rate) / float(scale) if scale else math.nan,
            "n_frames": int(ints[4]), "width": int(ints[8]), "height": int(ints[9])}
