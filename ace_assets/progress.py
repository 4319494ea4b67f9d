"""A run's progress on the terminal: each stage's start and end, its warnings, the checks' verdicts.

Used by the lab's front ends (:mod:`ace_assets.pipeline`) while a run executes in the
calling thread: a background thread reads the run's Dagster event records as they are
written.
"""
from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta, timezone

from ace_neuro.progress import PROGRESS_PREFIX

from .graph import all_checks
from .runner import latest_line_run_id

log = logging.getLogger("ace_assets.pipeline")

#: Set while a run executes in this process: the CLI's log filter then shows the stages' warnings
#: as the run relays them (once, with the stage's name) instead of the library's own copies.
RUN_IN_PROGRESS = threading.Event()


def _check_step_names() -> set[str]:
    return {c.node_def.name for c in all_checks()}


#: how Dagster's executor says it skips a step whose upstream failed
_SKIPPED_STEP_MESSAGE = "Dependencies for step"


class StageProgress:
    """Logs each stage's start and end (with timings) while a run executes in this process.

    A background thread polls the instance's event log for the run tagged with the
    line (the run executes in the calling thread), so long stages show up on the
    terminal as they start and finish, not only at the end.
    """

    def __init__(self, instance, line_num: int, *, interval_s: float = 0.5):
        self.instance = instance
        self.line = str(line_num)
        self.interval_s = interval_s
        self.since = datetime.now(timezone.utc) - timedelta(seconds=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"progress-line-{line_num}", daemon=True)
        self._run_id: str | None = None
        self._seen = 0
        self._started: dict[str, float] = {}
        self._check_steps = _check_step_names()
        self.checks_passed = 0
        self.checks_failed = 0
        self.skipped: set[str] = set()  # steps not run because an upstream stage failed

    def __enter__(self) -> "StageProgress":
        RUN_IN_PROGRESS.set()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        RUN_IN_PROGRESS.clear()
        self._poll()
        if self.checks_passed or self.checks_failed:
            log.log(logging.WARNING if self.checks_failed else logging.INFO,
                    "line %s: quality checks: %d passed, %d did not pass", self.line, self.checks_passed,
                    self.checks_failed)
        if self.skipped:
            log.info("line %s: %d later stages and checks were not run (they need the failed one)", self.line,
                     len(self.skipped))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()

    def _poll(self) -> None:
        if self._run_id is None:
            self._run_id = latest_line_run_id(self.instance, self.line, since=self.since)
            if self._run_id is None:
                return
        records = self.instance.all_logs(self._run_id)
        for record in records[self._seen:]:
            self._report(record)
        self._seen = len(records)

    def _report(self, record) -> None:
        ev = record.dagster_event
        step = record.step_key or "?"
        if ev is None:  # a message logged by a stage (context.log), or by Dagster's executor
            if record.user_message.startswith(_SKIPPED_STEP_MESSAGE):
                self.skipped.add(step)  # one per stage after a failure: said once, with the failure
                return
            if record.level >= logging.WARNING:
                message = re.sub(rf"^line {self.line}: ", "", record.user_message)
                log.log(record.level, "line %s: %s: %s", self.line, step, message)
            elif record.user_message.startswith(PROGRESS_PREFIX):  # frames done, frames/s, time left
                log.info("line %s: %s", self.line, record.user_message[len(PROGRESS_PREFIX):])
            return
        kind = ev.event_type_value
        if step in self._check_steps and kind != "ASSET_CHECK_EVALUATION":
            return  # quality checks are reported by their evaluation, not as stages
        if kind == "STEP_START":
            self._started[step] = record.timestamp
            log.info("line %s: %s started", self.line, step)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            took = record.timestamp - self._started.get(step, record.timestamp)
            if kind == "STEP_SUCCESS":
                log.info("line %s: %s done in %.1f s", self.line, step, took)
            else:
                log.error("line %s: %s FAILED after %.1f s", self.line, step, took)
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = ev.event_specific_data
            if evaluation is not None and getattr(evaluation, "passed", True):
                self.checks_passed += 1
            elif evaluation is not None:
                self.checks_failed += 1
                check = getattr(getattr(evaluation, "asset_check_key", None), "name", "?")
                asset = evaluation.asset_key.to_user_string()
                desc = getattr(evaluation, "description", "") or ""
                log.warning("line %s: quality check '%s' on %s did not pass%s", self.line, check, asset,
                            f": {desc}" if desc else "")
