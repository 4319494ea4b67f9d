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
    d = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)
    return {"parameters": MetadataValue.json(_jsonable(d)), "parameters_hash": stage_hash}


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v
