"""The asset graph (every asset and check) and the resources it runs with, apart from the Definitions.

Kept apart from :mod:`ace_assets.definitions` so the sensors and the runner can use the graph
without importing the module that imports them.
"""
from __future__ import annotations

from dagster import load_asset_checks_from_modules, load_assets_from_modules

from resources import FigureStore, JsonIOManager, ParquetIOManager, ZarrIOManager

from . import cnmfe, ingest, motion, parameters, preprocess, signals

ASSET_MODULES = [parameters, ingest, preprocess, motion, cnmfe, signals]


def all_assets():
    return load_assets_from_modules(ASSET_MODULES)


def all_checks():
    return load_asset_checks_from_modules(ASSET_MODULES)


def downstream_of(asset: str) -> list[str]:
    """``asset`` and every asset below it in the graph (asset names)."""
    children: dict[str, set[str]] = {}
    for a in all_assets():
        for key in a.keys:
            for dep in a.asset_deps.get(key, ()):
                children.setdefault(dep.to_user_string(), set()).add(key.to_user_string())
    out, todo = [], [asset]
    while todo:
        name = todo.pop(0)
        if name not in out:
            out.append(name)
            todo.extend(sorted(children.get(name, ())))
    return out


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
