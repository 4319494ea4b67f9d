"""Small helpers shared by the benchmarks: wall time, and time + peak memory of a child process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
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
    """Outcome of :func:`run_child`.

    ``peak_rss_mib`` is the child's own peak (VmHWM); ``peak_tree_mib`` the peak of the whole
    process tree below it (the child, its children and theirs: e.g. the CaImAn runner and its
    worker pool), sampled, and never below ``peak_rss_mib``.
    """

    returncode: int
    seconds: float
    peak_rss_mib: float
    stdout: str
    stderr: str
    cpu_seconds: float = float("nan")
    peak_tree_mib: float = float("nan")


#: seconds between two samples of the process tree's memory
TREE_SAMPLE_S = 0.2


def _ppids() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        out[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return out


def _memory_kib(pid: int) -> int:
    """Proportional set size (shared pages split among their users), else resident size, in KiB."""
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith(key):
                        return int(line.split()[1])
        except OSError:
            continue
    return 0


def tree_memory_kib(root: int) -> int:
    """Memory of ``root`` and all its descendants now (KiB, PSS summed)."""
    parents = _ppids()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _memory_kib(pid)
        todo.extend(children.get(pid, ()))
    return total


class _TreeSampler:
    """Samples :func:`tree_memory_kib` of a process in a thread; ``peak_kib`` the largest seen."""

    def __init__(self, pid: int):
        self.pid, self.peak_kib = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, tree_memory_kib(self.pid))
            except (OSError, ValueError):
                pass
            self._stop.wait(TREE_SAMPLE_S)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """``(fn(), seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_child(args: Sequence[str], *, env: dict | None = None, cwd: str | os.PathLike | None = None) -> ChildRun:
    """Run ``python <args>`` in a fresh process: wall time and peak memory (its own and its tree's).

    ``args`` is what would follow ``python`` on a command line (``["-m", "bench.x", "--n", "5"]``,
    ``["script.py", ...]`` or ``["-c", code, ...]``). The peak resident memory (MiB) is the
    child's ``VmHWM`` at exit, ``cpu_seconds`` its user + system time with its children's (both NaN
    if the child died before reporting them). ``peak_tree_mib`` adds every process the child
    starts, grandchildren included (sampled every :data:`TREE_SAMPLE_S` s, proportional set
    size). Output goes through temporary files, so a chatty child cannot block on a full pipe.
    ``cwd`` is the child's working folder, which is also the first entry of its ``sys.path``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = os.path.join(tmp, "peak")
        child_env = dict(os.environ if env is None else env, ACE_BENCH_PEAK_FILE=peak_file)
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        with open(out_path, "w") as out, open(err_path, "w") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, *args], stdout=out, stderr=err,
                                    env=child_env, cwd=cwd)
            sampler = _TreeSampler(proc.pid)
            try:
                code = proc.wait()
            finally:
                tree_kib = sampler.stop()
            seconds = time.perf_counter() - t0
        peak = cpu = float("nan")
        if os.path.exists(peak_file):
            with open(peak_file) as fh:
                report = json.load(fh)
            peak, cpu = report["peak_kib"] / 1024.0, float(report["cpu_s"])
        tree = max(tree_kib / 1024.0, peak) if peak == peak else (tree_kib / 1024.0 or float("nan"))
        with open(out_path) as fh_out, open(err_path) as fh_err:
            return ChildRun(code, seconds, peak, fh_out.read(), fh_err.read(), cpu, tree)
