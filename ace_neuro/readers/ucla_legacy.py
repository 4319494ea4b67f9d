"""UCLA Miniscope V3 on the legacy acquisition software.

Layout::

    <session>/msCam1.avi, msCam2.avi, ...   1-based, 1000 frames each (the miniscope)
    <session>/behavCam1.avi, ...            behaviour camera: never read
    <session>/timestamp.dat                 tab-separated: camNum frameNum sysClock buffer

``timestamp.dat`` interleaves both cameras. The miniscope's ``camNum`` is the one
whose row count matches the msCam videos' frame count (the software numbers
cameras by USB enumeration order, so it is not always the same number).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .base import MiniscopeReader, ReaderError, probe_video

_MSCAM = re.compile(r"^msCam(\d+)\.avi$", re.IGNORECASE)


class UclaLegacyV3Reader(MiniscopeReader):
    format_name = "ucla_legacy_v3"
    first_chunk_number = 1
    looks_for = "msCam1.avi, msCam2.avi, ... and timestamp.dat in the session folder"

    @classmethod
    def recognises(cls, session_dir: Path) -> bool:
        return (session_dir / "timestamp.dat").is_file() and any(
            _MSCAM.match(p.name) for p in session_dir.glob("*.avi"))

    def _video_dir_and_files(self):
        return self.session_dir, [p for p in self.session_dir.glob("*.avi") if _MSCAM.match(p.name)]

    def _timestamps(self):
        path = self.session_dir / "timestamp.dat"
        try:
            ts = pd.read_csv(path, sep=r"\s+", engine="python")
        except (OSError, ValueError) as exc:
            raise ReaderError(f"{path}: cannot be read ({exc}).") from None
        need = ["camNum", "frameNum", "sysClock"]
        missing = [c for c in need if c not in ts.columns]
        if missing:
            raise ReaderError(f"{path}: missing column(s) {missing}; found {list(ts.columns)}. "
                              f"Expected the header 'camNum frameNum sysClock buffer'.")
        _, files = self._video_dir_and_files()
        n_video = sum(probe_video(f)[0] for f in files)
        counts = ts.groupby("camNum").size()
        # the miniscope camera: the one whose row count matches the msCam videos; else the closest
        cam = int((counts - n_video).abs().idxmin())
        rows = ts[ts["camNum"] == cam].sort_values("frameNum")
        times_s = rows["sysClock"].to_numpy(dtype=float) / 1000.0
        meta = {"deviceType": "Miniscope_V3", "camNum": cam,
                "cameras_in_timestamp_file": {int(k): int(v) for k, v in counts.items()}}
        return times_s, rows["frameNum"].to_numpy(), meta
