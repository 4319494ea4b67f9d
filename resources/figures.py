"""Where the assets' figures go: PNG files under ``<storage root>/figures/<line>/`` and previews in the UI."""
from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, MetadataValue
from matplotlib.figure import Figure

from ace_neuro.plots.common import png_markdown, write_png


class FigureStore(ConfigurableResource):
    """Writes each figure an asset makes as ``<base_path>/figures/<line>/<asset>[_<name>].png`` and returns the
    same PNG as an inline preview for the asset's metadata."""

    base_path: str

    def folder(self, line: str | int) -> Path:
        return Path(self.base_path) / "figures" / str(line)

    def preview(self, context, name: str, fig: Figure) -> MetadataValue:
        asset = context.asset_key.to_user_string()
        file = f"{asset}.png" if name == "preview" else f"{asset}_{name}.png"
        png = write_png(fig, self.folder(context.partition_key) / file)
        return MetadataValue.md(png_markdown(png, name))
