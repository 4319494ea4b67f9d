"""Sensor: a line's row of analysis_parameters.csv (or its curation file) changed -> refresh its snapshots.

Every stage reads its parameters from a snapshot asset (``crop_parameters``,
``cnmfe_parameters``, ...; see :mod:`ace_assets.parameters`) whose data version is the hash
of the values, and ``accepted_components`` reads the line's manual curation from the
``component_curation`` snapshot, versioned the same way. This sensor compares, for every line analysed before, the hash of each
stage's parameters as the CSV now gives them with the data version of the snapshot last
materialised. When one differs it requests a run of the snapshots only (run key: the line
and the new hashes, so each edit is handled once). The snapshots whose values did not
change keep their data version; those that did change get a new one, and the Dagster UI
then shows exactly the downstream stages of the changed parameters as stale, ready to be
re-materialised (or backfilled) by a person.

Settings: ``ACE_SENSOR_INTERVAL_SECONDS`` (default 60) and ``ACE_PARAMETERS_SENSOR``
(``stopped`` to not start it by default; it runs by default - it only refreshes small
snapshots, never a stage).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Mapping

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ace_assets.parameters import PARAMETER_ASSETS
from ace_assets.partitions import LINES_PARTITION
from ace_assets.staleness import current_data_version
from ace_neuro.params import params_hash
from ace_neuro.project import Project, ProjectError, curation_file
from ace_neuro.stages.evaluation import curation_version, load_curation
from resources import ProjectResource

from .raw_data import DEFAULT_INTERVAL_SECONDS, TRIGGER_TAG, _env_number

@dataclass(frozen=True)
class ParameterChange:
    """The stages of one line whose parameters differ from their last snapshot."""

    line: str
    stages: tuple[str, ...]  # snapshot asset names
    current: Mapping[str, str]  # snapshot asset -> hash of the CSV's values now

    @property
    def run_key(self) -> str:
        digest = hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(self.current.items())).encode())
        return f"parameters-{self.line}-{digest.hexdigest()[:12]}"


#: the curation snapshot, refreshed like the parameter snapshots
CURATION_SNAPSHOT = "component_curation"
SNAPSHOT_ASSETS = (*PARAMETER_ASSETS, CURATION_SNAPSHOT)


def current_hashes(project: Project, line: str) -> dict[str, str]:
    """Snapshot asset -> hash of its values as the project's files give them now."""
    params = project.params(int(line))
    out = {asset: params_hash(getattr(params, field)) for asset, field in PARAMETER_ASSETS.items()}
    out[CURATION_SNAPSHOT] = curation_version(load_curation(curation_file(project.project_path, int(line))))
    return out


def stored_hashes(instance: DagsterInstance, lines: list[str]) -> dict[str, dict[str, str]]:
    """line -> {snapshot asset -> data version of its latest materialisation} (lines with snapshots only)."""
    out: dict[str, dict[str, str]] = {}
    for asset in SNAPSHOT_ASSETS:
        for line in lines:
            version = current_data_version(instance, asset, line)
            if version:
                out.setdefault(line, {})[asset] = version
    return out


def find_changes(project: Project, instance: DagsterInstance) -> tuple[list[ParameterChange], list[str]]:
    """(lines whose parameters changed, problems found reading rows) for every line with snapshots."""
    lines = [line for line in instance.get_dynamic_partitions(LINES_PARTITION)
             if line.isdigit() and int(line) in project.experiments]
    stored = stored_hashes(instance, lines)
    changes, problems = [], []
    for line in sorted(stored, key=int):
        try:
            now = current_hashes(project, line)
        except ProjectError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        changed = tuple(a for a in SNAPSHOT_ASSETS if a in stored[line] and stored[line][a] != now[a])
        missing = tuple(a for a in SNAPSHOT_ASSETS if a not in stored[line])
        if changed or missing:
            changes.append(ParameterChange(line, changed + missing, now))
    return changes, problems


def build_parameters_changed_sensor(*, name: str = "parameters_changed", minimum_interval_seconds: int | None = None,
                                    default_status: DefaultSensorStatus | None = None) -> SensorDefinition:
    """The sensor that refreshes parameter snapshots after the CSV changed (see the module docstring)."""
    interval = _env_number("ACE_SENSOR_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS, kind=int, lo=1) \
        if minimum_interval_seconds is None else int(minimum_interval_seconds)
    if default_status is None:
        default_status = (DefaultSensorStatus.STOPPED if os.environ.get("ACE_PARAMETERS_SENSOR", "").strip().lower()
                          == "stopped" else DefaultSensorStatus.RUNNING)
    keys = [AssetKey(a) for a in SNAPSHOT_ASSETS]

    @sensor(name=name, minimum_interval_seconds=interval, default_status=default_status,
            target=AssetSelection.assets(*keys),
            description="analysis_parameters.csv or a curation file changed for an analysed line -> refresh "
                        "its snapshots, so the stages whose inputs changed show as stale.")
    def _parameters_changed(context: SensorEvaluationContext, project: ProjectResource):
        try:
            proj = project.load()
        except ProjectError as exc:
            return SkipReason(f"Cannot read the project ({exc}). Set ACE_PROJECT_PATH.")
        changes, problems = find_changes(proj, context.instance)
        for p in problems:
            context.log.warning(p)
        if not changes:
            why = f" ({len(problems)} row(s) cannot be read: {'; '.join(problems[:3])})" if problems else ""
            return SkipReason(f"No analysed line's parameters changed in {proj.parameters_file}{why}.")
        for c in changes:
            context.log.info(f"line {c.line}: parameters of {', '.join(c.stages)} changed; refreshing snapshots")
        return SensorResult(run_requests=[
            RunRequest(run_key=c.run_key, partition_key=c.line, asset_selection=keys,
                       tags={"ace/line": c.line, TRIGGER_TAG: name, "ace/changed": ",".join(c.stages)[:200]})
            for c in changes])

    return _parameters_changed


__all__ = ["ParameterChange", "build_parameters_changed_sensor", "current_hashes", "find_changes", "stored_hashes"]
