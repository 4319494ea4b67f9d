"""The Definitions object: every asset, check, job, sensor and resource of the platform.

Configuration comes from the environment so the same code serves the demo, the UI and
a lab's real project:

- ``ACE_PROJECT_PATH``: folder with experiments.csv and analysis_parameters.csv
- ``ACE_DATA_PATH``: root of the raw recordings
- ``ACE_STORAGE_ROOT``: where assets are stored (``<root>/<asset>/<line>.zarr|.parquet``)
"""
from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from resources import (FigureStore, JsonIOManager, ParquetIOManager, ZarrIOManager, default_storage_root,
                       env_project_resource)
from sensors import all_sensors

from . import cnmfe, ingest, motion, parameters, preprocess, signals

ASSET_MODULES = [parameters, ingest, preprocess, motion, cnmfe, signals]


def all_assets():
    return load_assets_from_modules(ASSET_MODULES)


def all_checks():
    return load_asset_checks_from_modules(ASSET_MODULES)


def build_resources(project, storage_root: str) -> dict:
    """The resources every asset needs: the project, the three IO managers and the figures under one root."""
    root = str(storage_root)
    return {
        "project": project,
        "figures": FigureStore(base_path=root),
        "zarr_io": ZarrIOManager(base_path=root),
        "parquet_io": ParquetIOManager(base_path=root),
        "json_io": JsonIOManager(base_path=root),
    }


def build_definitions(*, project=None, storage_root: str | None = None) -> Definitions:
    return Definitions(
        assets=all_assets(),
        asset_checks=all_checks(),
        sensors=all_sensors(),
        resources=build_resources(project or env_project_resource(), storage_root or default_storage_root()),
    )


defs = build_definitions()
