"""Is a session folder complete? Pure logic for the raw-data sensor (no Dagster here).

A session folder listed in ``experiments.csv`` is *ready* for analysis when

1. it exists under the data path,
2. a raw reader recognises it (:func:`ace_neuro.readers.find_reader`),
3. its newest file was modified more than ``settle_seconds`` ago, and
4. its files (count, total size, newest modification time) are the same as at
   the previous sensor tick - the copy from the rig has stopped.

The state carried between ticks (fingerprints of folders seen, lines already
handled) lives in :class:`SensorCursor`, serialised as JSON in the sensor's cursor.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ace_neuro.project import Project, ProjectError
from ace_neuro.readers import ReaderError, find_reader

log = logging.getLogger(__name__)

CURSOR_VERSION = 1


@dataclass(frozen=True)
class FolderFingerprint:
    """What is on disk under a session folder: enough to see a copy still running.

    Attributes
    ----------
    n_files : int
        Regular files anywhere under the folder.
    n_bytes : int
        Their total size in bytes.
    newest_mtime : float
        Latest modification time among them (seconds since the epoch), 0 if no file.
    """

    n_files: int
    n_bytes: int
    newest_mtime: float

    def as_list(self) -> list:
        return [self.n_files, self.n_bytes, self.newest_mtime]

    @classmethod
    def from_list(cls, values) -> "FolderFingerprint":
        n_files, n_bytes, newest = values
        return cls(int(n_files), int(n_bytes), float(newest))


def folder_fingerprint(folder: str | os.PathLike) -> FolderFingerprint:
    """Count, total size and newest modification time of every file under ``folder``.

    Files that vanish while the folder is walked (a copy program renaming its
    temporary files) are skipped; they show up as a changed fingerprint next tick.
    """
    n_files = n_bytes = 0
    newest = 0.0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            n_files += 1
            n_bytes += st.st_size
            newest = max(newest, st.st_mtime)
    return FolderFingerprint(n_files, n_bytes, newest)


@dataclass
class SensorCursor:
    """State kept between ticks.

    Attributes
    ----------
    pending : dict
        line (text) -> fingerprint seen at the last tick, for folders not yet launched.
    done : dict
        line (text) -> why it needs nothing more (the run key launched, or
        ``"materialised"`` when it had been analysed before the sensor saw it).
    """

    pending: dict[str, FolderFingerprint] = field(default_factory=dict)
    done: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"version": CURSOR_VERSION,
                           "pending": {k: v.as_list() for k, v in sorted(self.pending.items())},
                           "done": dict(sorted(self.done.items()))}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> "SensorCursor":
        """Parse a cursor; an empty or unreadable cursor starts afresh (with a warning)."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if data.get("version") != CURSOR_VERSION:
                raise ValueError(f"cursor version {data.get('version')!r}")
            pending = {str(k): FolderFingerprint.from_list(v) for k, v in data.get("pending", {}).items()}
            done = {str(k): str(v) for k, v in data.get("done", {}).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("raw-data sensor: cursor %r cannot be read (%s); starting afresh", text[:80], exc)
            return cls()
        return cls(pending=pending, done=done)


@dataclass(frozen=True)
class LineStatus:
    """One line's state at this tick."""

    line: str
    state: str  # 'ready' | 'waiting' | 'absent' | 'skipped'
    reason: str
    session_dir: Path | None = None


@dataclass(frozen=True)
class Readiness:
    """The outcome of one tick over every line of experiments.csv.

    ``ready`` lines are the ones to launch this tick (at most ``max_runs``, in line
    order); ``deferred`` are ready but over the cap; the cursor is the new state
    (launched lines must be marked done by the caller with :meth:`SensorCursor`).
    """

    ready: tuple[LineStatus, ...]
    deferred: tuple[LineStatus, ...]
    waiting: tuple[LineStatus, ...]
    absent: tuple[LineStatus, ...]
    skipped: tuple[LineStatus, ...]
    cursor: SensorCursor

    def summary(self, *, n_done: int, settle_seconds: float) -> str:
        """A one-paragraph, human-readable reason for skipping (shown in the UI)."""
        parts = []
        if self.waiting:
            shown = "; ".join(f"line {s.line}: {s.reason}" for s in self.waiting[:5])
            more = f" (+{len(self.waiting) - 5} more)" if len(self.waiting) > 5 else ""
            parts.append(f"{len(self.waiting)} session folder(s) not complete yet - {shown}{more}")
        if self.skipped:
            shown = "; ".join(f"line {s.line}: {s.reason}" for s in self.skipped[:5])
            parts.append(f"{len(self.skipped)} line(s) skipped - {shown}")
        if self.absent:
            lines = ", ".join(s.line for s in self.absent[:10])
            more = " ..." if len(self.absent) > 10 else ""
            parts.append(f"{len(self.absent)} session folder(s) not under the data path yet (lines {lines}{more})")
        parts.append(f"{n_done} line(s) already launched or analysed")
        head = "No new complete session folder to analyse"
        return f"{head}: " + "; ".join(parts) + f". Settle time {settle_seconds:g} s."


def _newest_age(fp: FolderFingerprint, now: float) -> float:
    return now - fp.newest_mtime


def check_lines(project: Project, cursor: SensorCursor, *, now: float, settle_seconds: float,
                max_runs: int, analysed: Iterable[str] = (), active: Iterable[str] = ()) -> Readiness:
    """Decide, for every line not handled yet, whether its session folder is ready.

    Parameters
    ----------
    project : Project
        The lab's project (experiments.csv read once).
    cursor : SensorCursor
        State from the previous tick (not modified; a new one is returned).
    now : float
        Current time, seconds since the epoch.
    settle_seconds : float
        How long the newest file must have been left alone, in seconds.
    max_runs : int
        At most this many lines are returned as ready; the rest are deferred.
    analysed : iterable of str
        Lines already materialised (by the UI, the CLI or a backfill): marked done
        without a run.
    active : iterable of str
        Lines with a queued or running run: left for a later tick.

    Returns
    -------
    Readiness
    """
    if settle_seconds < 0:
        raise ValueError(f"settle_seconds must be >= 0, got {settle_seconds}")
    if max_runs < 1:
        raise ValueError(f"max_runs must be >= 1, got {max_runs}")
    new = SensorCursor(pending={}, done=dict(cursor.done))
    analysed, active = set(analysed), set(active)
    ready: list[LineStatus] = []
    waiting: list[LineStatus] = []
    absent: list[LineStatus] = []
    skipped: list[LineStatus] = []
    for line_num in project.line_numbers:
        line = str(line_num)
        if line in new.done:
            continue
        if line in analysed:
            new.done[line] = "materialised"
            continue
        try:
            folder = project.session_dir(line_num, must_exist=False)
        except ProjectError as exc:
            skipped.append(LineStatus(line, "skipped", str(exc)))
            continue
        if not folder.is_dir():
            absent.append(LineStatus(line, "absent", "not on disk", folder))
            continue
        if line in active:
            skipped.append(LineStatus(line, "skipped", "a run for it is queued or running", folder))
            continue
        try:
            find_reader(folder)
        except ReaderError:
            waiting.append(LineStatus(line, "waiting", "no reader recognises the folder yet", folder))
            continue
        fp = folder_fingerprint(folder)
        new.pending[line] = fp
        age = _newest_age(fp, now)
        previous = cursor.pending.get(line)
        if age < settle_seconds:
            waiting.append(LineStatus(line, "waiting", f"files changed {max(age, 0):.0f} s ago", folder))
        elif previous != fp:
            why = "first seen; checking its files stop changing" if previous is None else "files still changing"
            waiting.append(LineStatus(line, "waiting", why, folder))
        else:
            ready.append(LineStatus(line, "ready", f"{fp.n_files} files, {fp.n_bytes} bytes, stable", folder))
    return Readiness(ready=tuple(ready[:max_runs]), deferred=tuple(ready[max_runs:]), waiting=tuple(waiting),
                     absent=tuple(absent), skipped=tuple(skipped), cursor=new)


def mark_launched(cursor: SensorCursor, lines: Mapping[str, str]) -> SensorCursor:
    """A cursor with ``lines`` (line -> run key) moved from pending to done."""
    pending = {k: v for k, v in cursor.pending.items() if k not in lines}
    return SensorCursor(pending=pending, done={**cursor.done, **lines})


__all__ = ["FolderFingerprint", "LineStatus", "Readiness", "SensorCursor", "check_lines", "folder_fingerprint",
           "mark_launched"]
