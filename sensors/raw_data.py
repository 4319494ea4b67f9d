"""Sensors: new raw data -> a partition and one run of the whole graph; new CSV rows -> partitions.

``new_raw_data``
    Watches the session folders listed in ``experiments.csv``. When one appears under
    the data path and is complete (a reader recognises it, its newest file is older
    than the settle time, and its file count and sizes did not change since the
    previous tick), the line is added as a partition and a run of every asset is
    requested for it - once (run key ``raw-data-<line>`` and the cursor), at most
    ``max_runs_per_tick`` lines per tick. Lines analysed before (from the UI, the
    CLI or a backfill) and lines with a queued or running run are left alone.
    Otherwise the tick is skipped with a reason that says what it is waiting for.

``experiment_lines``
    Adds every new row of ``experiments.csv`` as a partition, so new lines can be
    materialised or backfilled from the UI before their data arrive.

Settings (environment variables, read when the definitions load):

====================================  ==========================================  =======
``ACE_SENSOR_SETTLE_SECONDS``         newest file must be at least this old (s)   120
``ACE_SENSOR_MAX_RUNS_PER_TICK``      runs requested per tick at most             2
``ACE_SENSOR_INTERVAL_SECONDS``       seconds between ticks                       60
``ACE_RAW_DATA_SENSOR``               ``running`` starts the sensor by default    stopped
====================================  ==========================================  =======
"""
from __future__ import annotations

import os
import time

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ace_assets.graph import all_assets
from ace_assets.partitions import LINES_PARTITION, lines_partitions
from ace_assets.runner import fail_dead_runs
from ace_neuro.project import ProjectError
from resources import ProjectResource

from .readiness import SensorCursor, check_lines, mark_launched

DEFAULT_SETTLE_SECONDS = 120.0
DEFAULT_MAX_RUNS_PER_TICK = 2
DEFAULT_INTERVAL_SECONDS = 60
ACTIVE_STATUSES = (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                   DagsterRunStatus.STARTED)
TRIGGER_TAG = "ace/trigger"


class SensorSettingError(ValueError):
    """A sensor setting (environment variable) that cannot be used."""


def _env_number(name: str, default: float, *, kind=float, lo: float = 0):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise SensorSettingError(f"{name}={text!r}: expected a {'whole ' if kind is int else ''}number >= {lo}. "
                                 f"Fix or unset the environment variable.") from None
    if value < lo:
        raise SensorSettingError(f"{name}={text!r}: expected a number >= {lo}. Fix or unset the environment variable.")
    return value


def run_key(line: str) -> str:
    """The run key of the one run the sensor requests for a line."""
    return f"raw-data-{line}"


def graph_root_keys(assets) -> list[AssetKey]:
    """Assets with no upstream asset among ``assets`` (``raw_movie``, ``frame_times``, ...)."""
    deps: dict[AssetKey, set[AssetKey]] = {}
    for a in assets:
        for key in a.keys:
            deps[key] = set(a.asset_deps.get(key, ()))
    return sorted((k for k, d in deps.items() if not d & deps.keys()), key=lambda k: k.to_user_string())


def _root_keys() -> list[AssetKey]:
    return graph_root_keys(all_assets())


def analysed_lines(instance: DagsterInstance, root_keys) -> set[str]:
    """Lines for which every root asset has been materialised at least once."""
    sets = [instance.get_materialized_partitions(k) for k in root_keys]
    return set.intersection(*sets) if sets else set()


def active_lines(instance: DagsterInstance) -> set[str]:
    """Lines with a queued, starting or running run (any trigger: UI, backfill, this sensor).

    Runs left unfinished by a killed CLI process are marked failed first, so their line is not
    "active" forever.
    """
    fail_dead_runs(instance)
    records = instance.get_run_records(filters=RunsFilter(statuses=list(ACTIVE_STATUSES)))
    return {r.dagster_run.tags["dagster/partition"] for r in records if "dagster/partition" in r.dagster_run.tags}


def build_raw_data_sensor(*, name: str = "new_raw_data", settle_seconds: float | None = None,
                          max_runs_per_tick: int | None = None, minimum_interval_seconds: int | None = None,
                          default_status: DefaultSensorStatus | None = None) -> SensorDefinition:
    """The new-raw-data sensor; unset options come from the environment (see the module docstring)."""
    settle = _env_number("ACE_SENSOR_SETTLE_SECONDS", DEFAULT_SETTLE_SECONDS) if settle_seconds is None \
        else float(settle_seconds)
    cap = _env_number("ACE_SENSOR_MAX_RUNS_PER_TICK", DEFAULT_MAX_RUNS_PER_TICK, kind=int, lo=1) \
        if max_runs_per_tick is None else int(max_runs_per_tick)
    interval = _env_number("ACE_SENSOR_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS, kind=int, lo=1) \
        if minimum_interval_seconds is None else int(minimum_interval_seconds)
    if default_status is None:
        default_status = (DefaultSensorStatus.RUNNING if os.environ.get("ACE_RAW_DATA_SENSOR", "").strip().lower()
                          == "running" else DefaultSensorStatus.STOPPED)
    if settle < 0 or cap < 1:
        raise SensorSettingError(f"settle_seconds must be >= 0 and max_runs_per_tick >= 1 "
                                 f"(got {settle} and {cap})")

    @sensor(name=name, minimum_interval_seconds=interval, default_status=default_status,
            target=AssetSelection.all(),
            description=f"New complete session folders -> a partition and one run of every asset. "
                        f"Settle time {settle:g} s, at most {cap} run(s) per tick.")
    def _new_raw_data(context: SensorEvaluationContext, project: ProjectResource):
        try:
            proj = project.load()
        except ProjectError as exc:
            return SkipReason(f"Cannot read the project ({exc}). Set ACE_PROJECT_PATH and ACE_DATA_PATH.")
        cursor = SensorCursor.from_json(context.cursor)
        instance = context.instance
        readiness = check_lines(proj, cursor, now=time.time(), settle_seconds=settle, max_runs=cap,
                                analysed=analysed_lines(instance, _root_keys()),
                                active=active_lines(instance))
        launched = {s.line: run_key(s.line) for s in readiness.ready}
        new_cursor = mark_launched(readiness.cursor, launched)
        if not launched:
            return SensorResult(skip_reason=readiness.summary(n_done=len(new_cursor.done), settle_seconds=settle),
                                cursor=new_cursor.to_json())
        existing = set(instance.get_dynamic_partitions(LINES_PARTITION))
        to_add = [line for line in launched if line not in existing]
        if readiness.deferred:
            context.log.info(f"{len(readiness.deferred)} more complete folder(s) wait for the next tick "
                             f"(at most {cap} run(s) per tick): lines {[s.line for s in readiness.deferred]}")
        for s in readiness.ready:
            context.log.info(f"line {s.line}: {s.session_dir} is complete ({s.reason}); requesting a run")
        return SensorResult(
            run_requests=[RunRequest(run_key=key, partition_key=line,
                                     tags={"ace/line": line, TRIGGER_TAG: name})
                          for line, key in launched.items()],
            dynamic_partitions_requests=[lines_partitions.build_add_request(to_add)] if to_add else [],
            cursor=new_cursor.to_json(),
        )

    return _new_raw_data


def build_experiment_lines_sensor(*, name: str = "experiment_lines", minimum_interval_seconds: int | None = None,
                                  default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING
                                  ) -> SensorDefinition:
    """The sensor that adds new rows of experiments.csv as partitions (no runs)."""
    interval = _env_number("ACE_SENSOR_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS, kind=int, lo=1) \
        if minimum_interval_seconds is None else int(minimum_interval_seconds)

    @sensor(name=name, minimum_interval_seconds=interval, default_status=default_status,
            description="New rows of experiments.csv -> new experiment_lines partitions (no runs).")
    def _experiment_lines(context: SensorEvaluationContext, project: ProjectResource):
        try:
            proj = project.load()
        except ProjectError as exc:
            return SkipReason(f"Cannot read the project ({exc}). Set ACE_PROJECT_PATH.")
        existing = set(context.instance.get_dynamic_partitions(LINES_PARTITION))
        new = [str(k) for k in proj.line_numbers if str(k) not in existing]
        if not new:
            return SkipReason(f"{proj.experiments_file} lists {len(proj.line_numbers)} line(s); "
                              f"every one is already a partition.")
        context.log.info(f"adding line(s) {new} from {proj.experiments_file} as partitions")
        return SensorResult(dynamic_partitions_requests=[lines_partitions.build_add_request(new)])

    return _experiment_lines


__all__ = ["SensorSettingError", "active_lines", "analysed_lines", "build_experiment_lines_sensor",
           "build_raw_data_sensor", "graph_root_keys", "run_key"]
