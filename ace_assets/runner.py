"""Materialise the asset graph for experiment lines outside the UI (demo, CLI, Python API).

One code path: the same asset definitions, IO managers and checks as the UI, run
in-process for one partition at a time on a persistent Dagster instance, so the
runs show up in the UI afterwards.
"""
import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from dagster import AssetCheckSeverity, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter, materialize

from ace_neuro.errors import ErrorReport, InternalError
from ace_neuro.storage import process_alive
from resources import ProjectResource

from .graph import all_assets, all_checks, build_resources
from .line_lock import line_claimed
from .partitions import LINES_PARTITION, sync_line_partitions

log = logging.getLogger(__name__)


@dataclass
class LineRun:
    """What one line's run did."""

    line_num: int
    success: bool
    run_id: str
    seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset -> metadata (plain values)
    error: str = ""


def _plain(v):
    return getattr(v, "value", v)


def get_instance() -> DagsterInstance:
    """The persistent instance under DAGSTER_HOME, or a temporary one when it is not set."""
    if os.environ.get("DAGSTER_HOME"):
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        return DagsterInstance.get()
    return DagsterInstance.ephemeral()


#: tags naming the process that executes a run in-process (the lab's CLI and API), so a run whose
#: process was killed can be recognised as dead by the next one
HOST_TAG, PID_TAG = "ace/host", "ace/pid"
_UNFINISHED = (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
               DagsterRunStatus.CANCELING)


def fail_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed the unfinished runs whose executing process on this machine is gone; free their slots.

    A run executed in-process (the CLI, ``MiniscopePipeline``) that is killed (SIGKILL, a crash, a
    closed laptop lid) stays STARTED in the instance and keeps its ``heavy`` pool slot, so every
    later run would wait for that slot forever. Runs launched by the daemon are watched by
    Dagster's run monitoring instead (``run_monitoring`` in dagster.yaml). Returns the run ids failed.
    """
    failed = []
    host = socket.gethostname()
    for record in instance.get_run_records(filters=RunsFilter(statuses=list(_UNFINISHED))):
        run = record.dagster_run
        pid = run.tags.get(PID_TAG, "")
        if run.tags.get(HOST_TAG) != host or not pid.isdigit() or int(pid) == os.getpid():
            continue
        if process_alive(int(pid)) is not False:  # alive, or cannot be asked (Windows)
            continue
        instance.report_run_failed(run, message=f"the process that ran it (pid {pid} on {host}) is gone: it was "
                                                f"killed or crashed; marked failed and its pool slots freed")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
    return failed


def materialize_lines(lines: Sequence[int], *, project_path: str, data_path: str | None, storage_root: str,
                      overrides: Mapping[str, Any] | None = None, instance: DagsterInstance | None = None,
                      selection=None, raise_on_error: bool = False,
                      run_config: Mapping[str, Any] | None = None) -> list[LineRun]:
    """Materialise every asset (or ``selection``) for each line; one run per line, each holding its line
    (:func:`~ace_assets.line_lock.line_claimed`) so no other run analyses it at the same time.

    ``run_config`` is passed to every run as is (the CLI uses it to set the console log level).
    """
    instance = instance or get_instance()
    for run_id in fail_dead_runs(instance):
        log.warning("run %s was left unfinished by a killed process: marked failed, its pool slots freed", run_id)
    project = ProjectResource(project_path=str(project_path), data_path=str(data_path or ""),
                              overrides=dict(overrides or {}))
    sync_line_partitions(instance, project.load())
    resources = build_resources(project, storage_root)
    runs = []
    for line in lines:
        t0 = time.perf_counter()
        with line_claimed(instance, line, storage_root):  # one run per line: LineBusyError otherwise
            result = materialize([*all_assets(), *all_checks()], instance=instance, resources=resources,
                                 partition_key=str(line), raise_on_error=raise_on_error, selection=selection,
                                 tags={"ace/line": str(line), HOST_TAG: socket.gethostname(),
                                       PID_TAG: str(os.getpid())}, run_config=run_config)
        run = LineRun(line_num=int(line), success=result.success, run_id=result.run_id,
                      seconds=time.perf_counter() - t0)
        for stat in instance.get_run_step_stats(result.run_id):
            if stat.start_time and stat.end_time:
                run.step_seconds[stat.step_key] = stat.end_time - stat.start_time
        for ev in result.get_asset_materialization_events():
            mat = ev.step_materialization_data.materialization
            run.metadata[mat.asset_key.to_user_string()] = {k: _plain(v) for k, v in mat.metadata.items()}
        if not result.success:
            failures = [e for e in result.all_events if e.is_step_failure]
            run.error = "; ".join(f"{e.step_key}: {e.step_failure_data.error.message.strip()}"
                                  for e in failures if e.step_failure_data and e.step_failure_data.error)
        runs.append(run)
    return runs


#: error classes of a step stopped by Ctrl-C / SIGINT (Dagster turns the interrupt into the first)
INTERRUPTION_ERRORS = frozenset({"DagsterExecutionInterruptedError", "KeyboardInterrupt"})


@dataclass(frozen=True)
class StepFailure:
    """One failed step of a run and what went wrong, by category (see :mod:`ace_neuro.errors`)."""

    step: str
    report: ErrorReport

    @property
    def interrupted(self) -> bool:
        return self.report.error_class in INTERRUPTION_ERRORS


def was_interrupted(failures: Sequence[StepFailure]) -> bool:
    """Whether any of :func:`step_failures` is an interrupt rather than an error."""
    return any(f.interrupted for f in failures)


def step_failures(instance: DagsterInstance, run_id: str) -> list[StepFailure]:
    """Each failed step of a run: platform errors with their report (raised as ``Failure`` by
    :mod:`resources.failures`), anything else as our own bug, with its class and message."""
    out = []
    for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        ev = record.dagster_event
        data = ev.step_failure_data if ev else None
        step = record.step_key or "?"
        if data is not None and data.user_failure_data is not None:
            meta = {k: _plain(v) for k, v in (data.user_failure_data.metadata or {}).items()}
            out.append(StepFailure(step, ErrorReport.from_metadata(meta, data.user_failure_data.description or "")))
            continue
        err = data.error if data else None
        if err is not None and err.cls_name == "DagsterAssetCheckFailedError":
            out.extend(StepFailure(step, report) for report in failed_check_reports(instance, run_id))
            continue
        while err is not None and err.cls_name and err.cls_name.startswith("Dagster") and err.cause is not None:
            err = err.cause
        if err is None:
            out.append(StepFailure(step, ErrorReport("internal", "", "the step failed without an error message",
                                                     InternalError.default_fix)))
            continue
        message = re.sub(rf"^[\w.]*\b{re.escape(err.cls_name or '')}: ", "", err.message.strip())
        out.append(StepFailure(step, ErrorReport("internal", err.cls_name or "", message, InternalError.default_fix)))
    return out


#: what a failed blocking check usually means, when its result carries no report of its own
CHECK_CATEGORIES = {"shifts_within_bounds": "parameters", "dff_movie_finite": "raw data",
                    "motion_corrected_finite": "raw data", "estimates_finite": "internal",
                    "phases_finite": "internal"}


def failed_check_reports(instance: DagsterInstance, run_id: str) -> list[ErrorReport]:
    """A report for each blocking check of the run that failed: its own (the parameters-fit check says the
    fix), or one naming the check, its asset and what it measured."""
    out = []
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = record.dagster_event.event_specific_data
        if ev.passed or ev.severity != AssetCheckSeverity.ERROR:
            continue
        meta = {k: _plain(v) for k, v in (ev.metadata or {}).items()}
        name, asset = ev.check_name, ev.asset_key.to_user_string()
        if "category" in meta:
            out.append(ErrorReport.from_metadata(meta, ev.description or f"the check {name} on {asset} failed"))
            continue
        measured = ", ".join(f"{k} = {v}" for k, v in meta.items() if not isinstance(v, (dict, list)))
        out.append(ErrorReport(
            CHECK_CATEGORIES.get(name, "raw data"), "quality check",
            f"the quality check '{name}' on {asset} did not pass ({measured or 'see its metadata'}), so the stages "
            f"after it did not run.",
            f"open {asset}'s check '{name}' in the Dagster UI (its line's row in the execution history) and the "
            "guide of that stage in docs/; correct the parameter or the recording, then run again"))
    return out or [ErrorReport("internal", "DagsterAssetCheckFailedError", "a blocking check failed",
                               InternalError.default_fix)]


def latest_line_run_id(instance: DagsterInstance, line: str, *, since=None) -> str | None:
    """The id of the newest run tagged with this line (created after ``since``), or None."""
    records = instance.get_run_records(filters=RunsFilter(tags={"ace/line": str(line)}, created_after=since), limit=1)
    return records[0].dagster_run.run_id if records else None



__all__ = ["CHECK_CATEGORIES", "INTERRUPTION_ERRORS", "StepFailure", "failed_check_reports", "fail_dead_runs", "LineRun", "LINES_PARTITION", "get_instance", "latest_line_run_id",
           "materialize_lines", "step_failures", "was_interrupted"]
