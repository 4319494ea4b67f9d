"""ONIX (Open Ephys) acquisition with a UCLA Miniscope V4 headstage.

Layout::

    <session>/start-time_<n>_miniscope.csv      one row, no header:
                                                ISO start time, acquisition clock (Hz), block read, block write
    <session>/ucla-miniscope-v4-clock_<n>.raw    uint64 acquisition-clock ticks, one per frame
    <session>/*.avi                              the video (the file whose name carries the same <n>
                                                 when there are several)

Frame times are ticks / clock rate (250 MHz when the start-time file does not say).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .base import MiniscopeReader, ReaderError

DEFAULT_CLOCK_HZ = 250_000_000
_START = re.compile(r"^start-time_(\d+)_miniscope\.csv$")


class OnixReader(MiniscopeReader):
    format_name = "onix"
    looks_for = "start-time_<n>_miniscope.csv with ucla-miniscope-v4-clock_<n>.raw and an .avi"

    @classmethod
    def recognises(cls, session_dir: Path) -> bool:
        return any(_START.match(p.name) for p in session_dir.glob("start-time_*_miniscope.csv"))

    def _index(self) -> str:
        found = sorted((m.group(1) for p in self.session_dir.iterdir() if (m := _START.match(p.name))), key=int)
        if len(found) > 1:
            raise ReaderError(f"{self.session_dir}: several ONIX acquisitions ({found}); "
                              f"give each its own session folder.")
        return found[0]

    def _video_dir_and_files(self):
        n = self._index()
        avis = sorted(self.session_dir.glob("*.avi"))
        mine = [p for p in avis if re.search(rf"(^|[_-]){n}\.avi$", p.name) and "miniscope" in p.name.lower()]
        return self.session_dir, mine or [p for p in avis if "behav" not in p.name.lower()]

    def _timestamps(self):
        n = self._index()
        start = self.session_dir / f"start-time_{n}_miniscope.csv"
        fields = [f.strip() for f in start.read_text().strip().splitlines()[0].split(",")] if start.stat().st_size else []
        clock = DEFAULT_CLOCK_HZ
        if len(fields) >= 2 and fields[1]:
            try:
                clock = float(fields[1])
            except ValueError:
                raise ReaderError(f"{start}, row 1, field 2: acquisition clock '{fields[1]}' is not a number.") from None
        raw = self.session_dir / f"ucla-miniscope-v4-clock_{n}.raw"
        if not raw.is_file():
            raise ReaderError(f"{self.session_dir}: {raw.name} (frame clock) is missing; "
                              f"without it the frames cannot be timed.")
        if raw.stat().st_size % 8:
            raise ReaderError(f"{raw}: {raw.stat().st_size} bytes is not a whole number of uint64 ticks; "
                              f"the file is truncated.")
        ticks = np.fromfile(raw, dtype="<u8")
        times = (ticks - ticks[0]).astype(np.float64) / clock if len(ticks) else np.zeros(0)
        meta = {"deviceType": "Miniscope_V4 (ONIX)", "start_time": fields[0] if fields else "",
                "clock_hz": clock, "first_tick": int(ticks[0]) if len(ticks) else 0}
        return times, None, meta
