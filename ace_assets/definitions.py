"""The Definitions object: every asset, check, sensor and resource of the platform.

Configuration comes from the environment so the same code serves the demo, the UI and
a lab's real project:

- ``ACE_PROJECT_PATH``: folder with experiments.csv and analysis_parameters.csv
- ``ACE_DATA_PATH``: root of the raw recordings
- ``ACE_STORAGE_ROOT``: where assets are stored (``<root>/<asset>/<line>.zarr|.parquet``)
"""
from __future__ import annotations

from dagster import Definitions

from resources import default_storage_root, env_project_resource
from sensors import all_sensors

from .graph import all_assets, all_checks, build_resources

__all__ = ["all_assets", "all_checks", "build_definitions", "build_resources", "defs"]


def build_definitions(*, project=None, storage_root: str | None = None) -> Definitions:
    return Definitions(
        assets=all_assets(),
        asset_checks=all_checks(),
        sensors=all_sensors(),
        resources=build_resources(project or env_project_resource(), storage_root or default_storage_root()),
    )


defs = build_definitions()
