"""The Definitions object: every asset, check, sensor and resource of the platform.

Configuration comes from the environment so the same code serves the demo, the UI and
a lab's real project:

- ``ACE_PROJECT_PATH``: folder with experiments.csv and analysis_parameters.csv
- ``ACE_DATA_PATH``: root of the raw recordings
- ``ACE_STORAGE_ROOT``: where assets are stored (``<root>/<asset>/<line>.zarr|.parquet``)
- ``ACE_EXECUTOR``: how a run launched by the UI, a backfill or a sensor executes its steps. Unset
  (or ``default``): Dagster's default (each step in its own process on the machine of the run).
  ``multiprocess`` / ``in_process``: those Dagster executors. ``celery``: each step is a task for
  Celery workers (``dagster-celery``, ``pip install 'ace-neuro[cluster]'``) on any machine that sees
  the same storage root; the broker is ``ACE_CELERY_BROKER`` (e.g. ``redis://host:6379/0``) and
  the result backend ``ACE_CELERY_BACKEND`` (the broker when unset). See docs/deploy.md.
"""
from __future__ import annotations

import os

from dagster import Definitions, ExecutorDefinition, in_process_executor, multiprocess_executor

from ace_neuro.errors import EnvironmentProblem
from resources import default_storage_root, env_project_resource
from sensors import all_sensors

from .graph import all_assets, all_checks, build_resources

__all__ = ["EXECUTORS", "all_assets", "all_checks", "build_definitions", "build_resources", "defs",
           "executor_from_env"]

#: the values ``ACE_EXECUTOR`` accepts
EXECUTORS = ("default", "multiprocess", "in_process", "celery")


def _celery_executor(env) -> ExecutorDefinition:
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:
        raise EnvironmentProblem(
            "ACE_EXECUTOR=celery, but dagster-celery is not installed in this environment",
            fix="pip install 'ace-neuro[cluster]' here and on every worker machine, or unset ACE_EXECUTOR.") from exc
    broker = env.get("ACE_CELERY_BROKER", "").strip()
    if not broker:
        raise EnvironmentProblem(
            "ACE_EXECUTOR=celery needs ACE_CELERY_BROKER, the URL of the Celery broker the workers listen to",
            fix="set ACE_CELERY_BROKER (e.g. redis://broker-host:6379/0), the same URL as in the workers' "
                "config yaml, or unset ACE_EXECUTOR.")
    backend = env.get("ACE_CELERY_BACKEND", "").strip() or broker
    return celery_executor.configured({"broker": broker, "backend": backend}, name="celery")


def executor_from_env(env=None) -> ExecutorDefinition | None:
    """The executor ``ACE_EXECUTOR`` names, or ``None`` for Dagster's default."""
    env = os.environ if env is None else env
    name = env.get("ACE_EXECUTOR", "").strip().lower().replace("-", "_") or "default"
    if name == "default":
        return None
    if name == "multiprocess":
        return multiprocess_executor
    if name == "in_process":
        return in_process_executor
    if name == "celery":
        return _celery_executor(env)
    raise EnvironmentProblem(f"ACE_EXECUTOR={env['ACE_EXECUTOR']!r} is not an executor this platform knows",
                             fix=f"set ACE_EXECUTOR to one of {', '.join(EXECUTORS)}, or unset it.")


def build_definitions(*, project=None, storage_root: str | None = None, executor=None) -> Definitions:
    return Definitions(
        assets=all_assets(),
        asset_checks=all_checks(),
        sensors=all_sensors(),
        resources=build_resources(project or env_project_resource(), storage_root or default_storage_root()),
        executor=executor if executor is not None else executor_from_env(),
    )


defs = build_definitions()
