"""Progress a person can read for long stages: frames done, frames per second, time left.

A :class:`ProgressMeter` is told how far a stage is (frames written, or the fraction of
the work done) and says one line at most every ``interval_s`` seconds, through the
callable it was given (a logger, or the Dagster run log):

    progress: motion_corrected_movie: 2,400 / 12,000 frames (20 %), 38 frames/s, about 4 min left

Lines start with :data:`PROGRESS_PREFIX` so front ends can show them apart from other
messages.
"""
from __future__ import annotations

import os
import time
from typing import Callable

PROGRESS_PREFIX = "progress: "
#: seconds between two lines of one meter (``ACE_PROGRESS_INTERVAL_S`` sets another)
DEFAULT_INTERVAL_S = 10.0


def _interval_from_environment() -> float:
    text = os.environ.get("ACE_PROGRESS_INTERVAL_S", "").strip()
    try:
        return float(text) if text else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


def format_duration(seconds: float) -> str:
    """``"40 s"``, ``"4 min"``, ``"1 h 05 min"``."""
    s = max(0.0, float(seconds))
    if s < 90:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


class ProgressMeter:
    """Says how far a stage of ``total_frames`` frames is, every ``interval_s`` seconds at most.

    Parameters
    ----------
    what : str
        The stage's name, first in every line.
    total_frames : int
        Frames of the recording (for a multi-pass stage, frames/s counts the recording's frames
        once: how fast the stage gets through the recording).
    say : callable(str)
        Where the lines go.
    interval_s : float, optional
        Least time between two lines; the first line comes after one interval. Default
        ``ACE_PROGRESS_INTERVAL_S`` or 10 s.
    clock : callable() -> float
        Seconds (for tests).
    """

    def __init__(self, what: str, total_frames: int, say: Callable[[str], None], *,
                 interval_s: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.what = what
        self.total = max(int(total_frames), 1)
        self.say = say
        self.interval_s = _interval_from_environment() if interval_s is None else float(interval_s)
        self.clock = clock
        self.started = clock()
        self._last_said = self.started
        self.fraction = 0.0
        self.step = ""

    def frames_done(self, n: int) -> None:
        """``n`` of the recording's frames are done (a single-pass stage)."""
        self.update(n / self.total)

    def update(self, fraction: float, step: str = "") -> None:
        """The stage is ``fraction`` (0..1) done, now in ``step`` (e.g. "spatial update")."""
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        self.step = step or self.step
        now = self.clock()
        if now - self._last_said >= self.interval_s and 0 < self.fraction < 1:
            self._last_said = now
            self.say(self.text(now))

    def text(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        frames = self.fraction * self.total
        rate = frames / elapsed
        left = elapsed * (1 - self.fraction) / self.fraction if self.fraction > 0 else float("inf")
        step = f" ({self.step})" if self.step else ""
        return (f"{PROGRESS_PREFIX}{self.what}{step}: {frames:,.0f} / {self.total:,} frames "
                f"({100 * self.fraction:.0f} %), {rate:,.0f} frames/s, about {format_duration(left)} left")
