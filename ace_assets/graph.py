"""The asset graph (every asset and check) and the resources it runs with, apart from the Definitions.

Kept apart from :mod:`ace_assets.definitions` so the sensors and the runner can use the graph
without importing the module that imports them.
"""
from __future__ import annotations

from dagster import AssetSpec, load_asset_checks_from_modules, load_assets_from_modules, map_asset_specs

from ace_neuro.params.table import STAGE_GUIDES

from resources import FigureStore, HtmlIOManager, JsonIOManager, ParquetIOManager, ZarrIOManager

from . import cnmfe, export, ingest, motion, parameters, preprocess, report, signals

ASSET_MODULES = [parameters, ingest, preprocess, motion, cnmfe, signals, export, report]


#: the guide in ``docs/`` that explains each asset (a parameter snapshot: its stage's guide)
ASSET_GUIDES = {
    "raw_movie": "ingest.md", "frame_times": "ingest.md", "cropped_movie": "crop.md", "dff_movie": "dff.md",
    "motion_corrected_movie": "motion.md", "cnmfe_summary_images": "cnmfe.md", "cnmfe_estimates": "cnmfe.md",
    "component_curation": "evaluation.md", "accepted_components": "evaluation.md", "calcium_phase": "phase.md",
    "calcium_events": "events.md", "spectrograms": "spectrogram.md", "nwb_file": "nwb.md",
    "line_report": "index.md",
}


def guide_for(asset: str) -> str:
    """The docs page (``docs/<page>``) that explains an asset."""
    if asset in ASSET_GUIDES:
        return ASSET_GUIDES[asset]
    stage = asset.removesuffix("_parameters")
    return STAGE_GUIDES.get(stage, "index.md")


def _with_guide(spec: AssetSpec) -> AssetSpec:
    page = guide_for(spec.key.to_user_string())
    return spec.replace_attributes(description=f"{spec.description or ''}\n\nGuide: docs/{page} in the "
                                               "ace-neuro repository.".lstrip())


def all_assets():
    """Every asset, its description ending with the guide that explains it."""
    return list(map_asset_specs(_with_guide, load_assets_from_modules(ASSET_MODULES)))


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
        "html_io": HtmlIOManager(base_path=root),
    }
