"""One run per experiment line at a time.

A line's outputs and parameter snapshots live under the storage root, shared by every run of
that line. Two runs of the same line at once would read each other's snapshots and overwrite
each other's outputs, so a run executed in this process (the CLI, ``MiniscopePipeline``, the
demo) first claims the line:

- a lock file ``<storage root>/.locks/<line>.lock`` names the claiming process (host, pid,
  time). It is created atomically; one left by a killed process of this machine is taken over.
- the Dagster instance must have no unfinished run of that line (one launched from the UI, a
  backfill or a sensor, or a CLI run using another storage root).

A second claim is refused with :class:`LineBusyError`, which names the holder. Runs launched by
the daemon are kept to one per line by ``tag_concurrency_limits`` on ``dagster/partition`` in
dagster.yaml: a second one waits in the queue.

Under a URL storage root (``s3://...``) the lock file is kept on this machine, in
``$ACE_LOCK_DIR`` (default ``<temporary folder>/ace-neuro-locks``) under a folder named by a hash
of the root's URL: object stores have no exclusive create that every backend honours, and a lock
object that a killed run left could not be told from a live one. So two processes of one machine
still exclude each other, but two machines sharing an object-store root are kept apart only by
the Dagster instance they share (the check above and the daemon's limits), not by the lock.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from ace_neuro.errors import EnvironmentProblem
from ace_neuro.storage import is_url, local_path, process_alive

LOCK_DIR = ".locks"
#: where the locks of URL storage roots are kept on this machine (default: the temporary folder)
LOCK_DIR_ENV = "ACE_LOCK_DIR"
#: a lock file that cannot be read (or names another machine) counts as stale after this long
FOREIGN_LOCK_MAX_AGE_S = 24 * 3600.0
_UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
               DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


class LineBusyError(EnvironmentProblem):
    """Another run is analysing this line now."""

    default_fix = "wait for that run to finish (or stop it), then run again."


def lock_path(storage_root: str | os.PathLike, line: int | str) -> Path:
    """``<storage root>/.locks/<line>.lock``; for a URL root a local file (see the module's notes)."""
    if is_url(storage_root):
        base = Path(os.environ.get(LOCK_DIR_ENV, "").strip() or Path(tempfile.gettempdir()) / "ace-neuro-locks")
        root = str(storage_root).rstrip("/")
        return base / hashlib.sha256(root.encode()).hexdigest()[:16] / f"{line}.lock"
    return local_path(storage_root) / LOCK_DIR / f"{line}.lock"


def _owner_text(owner: dict) -> str:
    when = owner.get("started", "")
    return f"process {owner.get('pid', '?')} on {owner.get('host', '?')}" + (f", started {when}" if when else "")


def _is_stale(path: Path, owner: dict | None) -> bool:
    if owner and owner.get("host") == socket.gethostname() and str(owner.get("pid", "")).isdigit():
        return process_alive(int(owner["pid"])) is False
    try:
        return time.time() - path.stat().st_mtime > FOREIGN_LOCK_MAX_AGE_S
    except FileNotFoundError:
        return True


def _read_owner(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _take(path: Path, line: int | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _read_owner(path)
            if _is_stale(path, owner):
                path.unlink(missing_ok=True)  # left by a killed run: take it over
                continue
            raise LineBusyError(f"line {line} is being analysed by another run ({_owner_text(owner or {})}); "
                                f"two runs of one line would use each other's parameters and outputs.",
                                file=path) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return
    raise LineBusyError(f"line {line}: could not claim {path}", file=path)


def _check_no_other_run(instance: DagsterInstance, line: int | str, path: Path) -> None:
    records = instance.get_run_records(filters=RunsFilter(statuses=_UNFINISHED, tags={"dagster/partition": str(line)}))
    mine = str(os.getpid())
    for record in records:
        run = record.dagster_run
        if run.tags.get("ace/pid") == mine and run.tags.get("ace/host") == socket.gethostname():
            continue
        who = (f"pid {run.tags['ace/pid']} on {run.tags.get('ace/host', '?')}" if "ace/pid" in run.tags
               else "launched from the Dagster UI, a backfill or a sensor")
        raise LineBusyError(f"line {line} is being analysed by Dagster run {run.run_id} ({who}, "
                            f"{run.status.value.lower()}).", file=path)


@contextmanager
def line_claimed(instance: DagsterInstance, line: int | str, storage_root: str | os.PathLike) -> Iterator[Path]:
    """Hold ``line`` for the duration of the block; raise :class:`LineBusyError` if another run has it."""
    path = lock_path(storage_root, line)
    _take(path, line)
    try:
        _check_no_other_run(instance, line, path)
        yield path
    finally:
        owner = _read_owner(path)
        if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            path.unlink(missing_ok=True)
