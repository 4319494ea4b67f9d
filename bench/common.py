"""Small helpers shared by the benchmarks: wall time, and time + peak memory of a child process."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class ChildRun:
    """Outcome of :func:`run_child`."""

    returncode: int
    seconds: float
    peak_rss_mib: float
    stdout: str
    stderr: str


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """``(fn(), seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_child(args: Sequence[str], *, env: dict | None = None) -> ChildRun:
    """Run ``python <args>`` in a fresh process: wall time and that process's peak resident memory.

    The peak is the child's own ``ru_maxrss`` as reported by ``wait4`` (KiB on Linux), so the
    parent's memory never counts. Output goes through temporary files (no pipe to fill up).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildRun(proc.returncode, seconds, usage.ru_maxrss / 1024.0, out.read(), err.read())
