"""Small helpers shared by the benchmarks: wall time, and time + peak memory of a child process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Sequence

# Runs "python <args>" (a -m module, a script or -c code) and, at exit, writes the process's own
# peak resident memory and its CPU seconds (its own and its waited-for children's: the motion
# workers) to the file named by ACE_BENCH_PEAK_FILE. VmHWM is read from
# /proc/self/status: unlike ru_maxrss, which Linux carries over fork and exec (a child forked
# from a big parent reports the parent's size), it belongs to the new program's memory only.
_WRAPPER = """
import atexit, os, runpy, sys

def _report():
    import json, resource
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    peak = None
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1])
    except OSError:
        pass
    if peak is None:
        peak = own.ru_maxrss
    with open(os.environ["ACE_BENCH_PEAK_FILE"], "w") as fh:
        json.dump({"peak_kib": peak, "cpu_s": cpu}, fh)

atexit.register(_report)
args = sys.argv[1:]
if args[0] == "-m":
    sys.argv = [args[1]] + args[2:]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
elif args[0] == "-c":
    sys.argv = ["-c"] + args[2:]
    exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
"""


@dataclass(frozen=True)
class ChildRun:
    """Outcome of :func:`run_child`."""

    returncode: int
    seconds: float
    peak_rss_mib: float
    stdout: str
    stderr: str
    cpu_seconds: float = float("nan")


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """``(fn(), seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_child(args: Sequence[str], *, env: dict | None = None) -> ChildRun:
    """Run ``python <args>`` in a fresh process: wall time and that process's own peak memory.

    ``args`` is what would follow ``python`` on a command line (``["-m", "bench.x", "--n", "5"]``,
    ``["script.py", ...]`` or ``["-c", code, ...]``). The peak resident memory (MiB) is the
    child's ``VmHWM`` at exit, ``cpu_seconds`` its user + system time with its children's (both NaN
    if the child died before reporting them). Output goes through
    temporary files, so a chatty child cannot block on a full pipe.
    """
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = os.path.join(tmp, "peak")
        child_env = dict(os.environ if env is None else env, ACE_BENCH_PEAK_FILE=peak_file)
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        with open(out_path, "w") as out, open(err_path, "w") as err:
            t0 = time.perf_counter()
            code = subprocess.call([sys.executable, "-c", _WRAPPER, *args], stdout=out, stderr=err,
                                   env=child_env)
            seconds = time.perf_counter() - t0
        peak = cpu = float("nan")
        if os.path.exists(peak_file):
            with open(peak_file) as fh:
                report = json.load(fh)
            peak, cpu = report["peak_kib"] / 1024.0, float(report["cpu_s"])
        with open(out_path) as fh_out, open(err_path) as fh_err:
            return ChildRun(code, seconds, peak, fh_out.read(), fh_err.read(), cpu)
