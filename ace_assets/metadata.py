"""Turning stage results into Dagster metadata: figures as inline PNG previews, parameters with their hash."""
from __future__ import annotations

import dataclasses
from typing import Any

from dagster import MetadataValue
from matplotlib.figure import Figure

from ace_neuro.plots.common import figure_png, png_markdown


def preview(fig: Figure, alt: str = "preview") -> MetadataValue:
    """A figure as markdown with the PNG inline: the Dagster UI shows it in the asset's metadata."""
    return MetadataValue.md(png_markdown(figure_png(fig), alt))


def params_metadata(params, stage_hash: str) -> dict[str, Any]:
    """The parameters a stage used (a dataclass, or a dict of them) and their hash."""
    return {"parameters": MetadataValue.json(_jsonable(params)), "parameters_hash": stage_hash}


def _jsonable(v):
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _jsonable(dataclasses.asdict(v))
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v
