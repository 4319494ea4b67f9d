"""The Definitions object: every asset, check, job, sensor and resource of the platform.

Configuration comes from the environment so the same code serves the demo, the UI and
a lab's real project:

- ``ACE_PROJECT_PATH``: folder with experiments.csv and analysis_parameters.csv
- ``ACE_DATA_PATH``: root of the raw recordings
- ``ACE_STORAGE_ROOT``: where assets are stored (``<root>/<asset>/<line>.zarr|.parquet``)
"""
from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from resources import ParquetIOManager, ZarrIOManager, default_storage_root, env_project_resource
from sensors import all_sensors

from . import ingest, preprocess

ASSET_MODULES = [ingest, preprocess]


def all_assets():
    return load_assets_from_modules(ASSET_MODULES)


def all_checks():
    return load_asset_checks_from_modules(ASSET_MODULES)


def build_definitions(*, project=None, storage_root: str | None = None) -> Definitions:
    root = storage_root or default_storage_root()
    return Definitions(
        assets=all_assets(),
        asset_checks=all_checks(),
        sensors=all_sensors(),
        resources={
            "project": project or env_project_resource(),
            "zarr_io": ZarrIOManager(base_path=root),
            "parquet_io": ParquetIOManager(base_path=root),
        },
    )


defs = build_definitions()
