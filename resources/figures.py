"""Where the assets' figures go: PNG files under ``<storage root>/figures/<line>/`` and previews in the UI."""
from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, MetadataValue
from matplotlib.figure import Figure

from ace_neuro import storage
from ace_neuro.plots.common import figure_png, png_markdown, write_png


class FigureStore(ConfigurableResource):
    """Writes each figure an asset makes as ``<base_path>/figures/<line>/<asset>[_<name>].png`` and returns the
    same PNG as an inline preview for the asset's metadata.

    Under a URL root (``s3://...``) each PNG is rendered in memory and uploaded whole to its final name (one
    PUT: an object store shows it complete or not at all); figures are never read back, so they have no marker.
    """

    base_path: str

    def folder(self, line: str | int) -> Path | str:
        return storage.join(self.base_path, "figures", str(line))

    def preview(self, context, name: str, fig: Figure) -> MetadataValue:
        asset = context.asset_key.to_user_string()
        file = f"{asset}.png" if name == "preview" else f"{asset}_{name}.png"
        target = storage.join(self.folder(context.partition_key), file)
        if isinstance(target, str):
            png = figure_png(fig)
            storage.put_plain(png, target)
        else:
            png = write_png(fig, target)
        return MetadataValue.md(png_markdown(png, name))
