"""UCLA Miniscope DAQ software (V4 scopes, and V3 scopes on the new software).

Layout::

    <session>/metaData.json            session metadata
    <session>/notes.csv                optional
    <session>/Miniscope/0.avi, 1.avi   the miniscope's video, a file every framesPerFile frames
    <session>/Miniscope/metaData.json  deviceType, frameRate ("30FPS" or 30), framesPerFile, compression
    <session>/Miniscope/timeStamps.csv Frame Number,Time Stamp (ms),Buffer Index[,DAQ Frame Number]
    <session>/BehavCam_1/...           behaviour camera: never read

The device folder is found by its ``metaData.json`` (``deviceType`` starting with
"Miniscope"), in the session folder itself or up to three levels below it (the DAQ
software nests sessions as ``date/time/Miniscope``). The AVI headers always claim 60 fps;
the frame rate comes from ``timeStamps.csv``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .base import MiniscopeReader, ReaderError

TIMESTAMP_FILE = "timeStamps.csv"
DEVICE_META = "metaData.json"


def _is_miniscope_device_dir(d: Path) -> bool:
    meta = d / DEVICE_META
    if not (meta.is_file() and (d / TIMESTAMP_FILE).is_file()):
        return False
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError):
        # a damaged metaData.json beside the DAQ's numbered videos is still a device folder: the
        # reader then says what is wrong with the file instead of "no reader recognises"
        return any(p.stem.isdigit() for p in d.glob("*.avi"))
    if not isinstance(info, dict):
        return False
    kind = str(info.get("deviceType", "")) + " " + str(info.get("deviceName", ""))
    return "miniscope" in kind.lower()


def read_device_metadata(path: Path) -> dict:
    """The device's ``metaData.json``; a file that is not a JSON object is a ReaderError naming the spot."""
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReaderError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). The DAQ "
                          f"software writes this file; copy it again from the acquisition computer.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReaderError(f"{path}: cannot be read ({exc}). Copy it again from the acquisition computer.") from None
    if not isinstance(info, dict):
        raise ReaderError(f"{path}: holds a JSON {type(info).__name__}, not the DAQ's object of settings. Copy it "
                          f"again from the acquisition computer.")
    return info


def find_device_dirs(session_dir: Path, depth: int = 3) -> list[Path]:
    found = []
    frontier = [session_dir]
    for _ in range(depth + 1):
        nxt = []
        for d in frontier:
            if _is_miniscope_device_dir(d):
                found.append(d)
            else:
                nxt.extend(sorted(p for p in d.iterdir() if p.is_dir()))
        frontier = nxt
    return found


class UclaDaqReader(MiniscopeReader):
    format_name = "ucla_daq"
    first_chunk_number = 0
    looks_for = ("a device folder (e.g. Miniscope/) with metaData.json whose deviceType names a Miniscope, "
                 "timeStamps.csv and 0.avi, 1.avi, ...")

    @classmethod
    def recognises(cls, session_dir: Path) -> bool:
        return bool(find_device_dirs(session_dir))

    def _device_dir(self) -> Path:
        dirs = find_device_dirs(self.session_dir)
        if not dirs:
            raise ReaderError(f"{self.session_dir}: no Miniscope device folder found ({self.looks_for}).")
        if len(dirs) > 1:
            raise ReaderError(f"{self.session_dir}: several Miniscope device folders found: "
                              f"{[str(d) for d in dirs]}. Point 'calcium imaging directory' at one of them.")
        return dirs[0]

    def _video_dir_and_files(self):
        d = self._device_dir()
        files = [p for p in d.glob("*.avi") if p.stem.isdigit()]
        return d, files

    def _timestamps(self):
        d = self._device_dir()
        path = d / TIMESTAMP_FILE
        try:
            ts = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise ReaderError(f"{path}: cannot be read as CSV ({exc}).") from None
        ts.columns = [c.strip() for c in ts.columns]
        need = ["Frame Number", "Time Stamp (ms)"]
        missing = [c for c in need if c not in ts.columns]
        if missing:
            raise ReaderError(f"{path}: missing column(s) {missing}; found {list(ts.columns)}. "
                              f"Expected the DAQ software's header 'Frame Number,Time Stamp (ms),Buffer Index'.")
        times_ms = pd.to_numeric(ts["Time Stamp (ms)"], errors="coerce").to_numpy(dtype=float)
        if np.isnan(times_ms).any():
            row = int(np.flatnonzero(np.isnan(times_ms))[0]) + 2
            raise ReaderError(f"{path}, row {row}, column 'Time Stamp (ms)': not a number.")
        meta = read_device_metadata(d / DEVICE_META)
        session_meta = self.session_dir / DEVICE_META
        if session_meta.is_file() and session_meta != d / DEVICE_META:
            try:
                meta["session"] = json.loads(session_meta.read_text())
            except ValueError:
                pass
        meta["nominal_frame_rate"] = _nominal_rate(meta.get("frameRate"))
        return times_ms / 1000.0, ts["Frame Number"].to_numpy(), meta


def _nominal_rate(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    digits = "".join(ch for ch in str(value) if ch.isdigit() or ch == ".")
    return float(digits) if digits else None
