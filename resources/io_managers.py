"""Zarr and parquet IO managers: ``<root>/<asset>/<partition>.zarr|.parquet``, atomic, lazy, no pickle.

They only route objects to :mod:`ace_neuro.storage`, which does the writing; the
science library stays free of Dagster. ``base_path`` is a local folder or an fsspec URL
(``s3://bucket/root``); on an object store each output is a hidden version plus a marker
written last (see :mod:`ace_neuro.storage`), with options from ``$ACE_STORAGE_OPTIONS``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from ace_neuro import storage
from ace_neuro.movie import MovieAlias, MovieStream
from ace_neuro.progress import ProgressMeter
from ace_neuro.report import LineReport, write_report
from ace_neuro.params import params_from_dict, params_to_dict
from ace_neuro.stages.evaluation import Curation, curation_from_dict, curation_to_dict

from .failures import reports_failures


def default_storage_root() -> str:
    return os.environ.get("ACE_STORAGE_ROOT", str(Path.cwd() / "ace_storage"))


def _partition(context) -> str:
    """The one partition (experiment line) being written or read."""
    if not context.has_asset_partitions:
        return "__all__"
    keys = list(context.asset_partition_keys)
    if len(keys) == 1:
        return keys[0]
    # an asset check reading its partitioned asset sees the run's partition, not a subset
    if getattr(context, "has_partition_key", False):
        return context.partition_key
    raise ValueError(f"{context.asset_key.to_user_string()}: one experiment line at a time, got {len(keys)}")


def _existing(path: Path | str, context: InputContext) -> Path | str:
    if not storage.exists(path):
        raise storage.StorageError(f"{path}: not found. Materialise {context.asset_key.to_user_string()} "
                                   f"for line {_partition(context)} first.")
    return path


def _asset_path(root: str, context, suffix: str) -> Path | str:
    """``<root>/<asset>/<line><suffix>``: a path under a local root, a URL under a URL root."""
    return storage.join(root, *context.asset_key.path, f"{_partition(context)}{suffix}")


class ZarrIOManager(ConfigurableIOManager):
    """Movies (streamed block by block), pass-through aliases and array bundles in zarr."""

    base_path: str
    chunk_frames: int = storage.DEFAULT_CHUNK_FRAMES

    def path_for(self, context) -> Path | str:
        return _asset_path(self.base_path, context, ".zarr")

    @reports_failures
    def handle_output(self, context: OutputContext, obj) -> None:
        path = self.path_for(context)
        if isinstance(obj, MovieStream):
            meter = ProgressMeter(context.asset_key.to_user_string(), obj.shape[0], context.log.info)
            storage.write_movie(obj, path, chunk_frames=self.chunk_frames, progress=meter.frames_done)
            if obj.describe is not None:
                context.add_output_metadata(dict(obj.describe(storage.open_movie(path))))
        elif isinstance(obj, MovieAlias):
            storage.write_alias(obj, path)
        elif hasattr(obj, "to_arrays"):
            storage.write_bundle(obj, path)
        else:
            raise TypeError(f"ZarrIOManager cannot store {type(obj).__name__} for {context.asset_key}: "
                            f"return a MovieStream, MovieAlias or an object with to_arrays()")
        context.add_output_metadata({"path": str(path)})

    @reports_failures
    def load_input(self, context: InputContext):
        path = _existing(self.path_for(context), context)
        kind = storage.stored_kind(path)
        if kind in ("movie", "alias"):
            return storage.open_movie(path)
        return storage.read_bundle(path)


class ParquetIOManager(ConfigurableIOManager):
    """Tables (pandas DataFrames) as parquet files."""

    base_path: str

    def path_for(self, context) -> Path | str:
        return _asset_path(self.base_path, context, ".parquet")

    @reports_failures
    def handle_output(self, context: OutputContext, obj) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"ParquetIOManager stores DataFrames; {context.asset_key} returned {type(obj).__name__}")
        path = self.path_for(context)
        storage.write_table(obj, path)
        context.add_output_metadata({"path": str(path), "rows": len(obj)})

    @reports_failures
    def load_input(self, context: InputContext) -> pd.DataFrame:
        return storage.read_table(_existing(self.path_for(context), context))


def _to_json(obj) -> dict:
    if isinstance(obj, Curation):
        return {"type": "Curation", "values": curation_to_dict(obj)}
    return params_to_dict(obj)


def _from_json(data: dict):
    if data.get("type") == "Curation":
        return curation_from_dict(data["values"], source="stored curation snapshot")
    return params_from_dict(data)


class JsonIOManager(ConfigurableIOManager):
    """Small typed values (a stage's parameter snapshot, a line's curation) as JSON files, written atomically."""

    base_path: str

    def path_for(self, context) -> Path | str:
        return _asset_path(self.base_path, context, ".json")

    @reports_failures
    def handle_output(self, context: OutputContext, obj) -> None:
        path = self.path_for(context)
        storage.write_bytes(json.dumps(_to_json(obj), indent=1, sort_keys=True).encode(), path)
        context.add_output_metadata({"path": str(path)})

    @reports_failures
    def load_input(self, context: InputContext):
        path = _existing(self.path_for(context), context)
        return _from_json(json.loads(storage.read_bytes(path)))


class HtmlIOManager(ConfigurableIOManager):
    """Self-contained HTML pages (a line's report): ``<root>/<asset>/<line>.html``, written atomically; loading
    gives the file's path (under a URL root: the URL of the complete version, to download)."""

    base_path: str

    def path_for(self, context) -> Path | str:
        return _asset_path(self.base_path, context, ".html")

    @reports_failures
    def handle_output(self, context: OutputContext, obj) -> None:
        if not isinstance(obj, LineReport):
            raise TypeError(f"HtmlIOManager stores LineReport pages; {context.asset_key} returned {type(obj).__name__}")
        path = write_report(obj, self.path_for(context))
        url = path if isinstance(path, str) else path.resolve().as_uri()
        context.add_output_metadata({"report": MetadataValue.url(url),
                                     "path": MetadataValue.path(str(path if isinstance(path, str) else path.resolve())),
                                     "figures": obj.n_figures})

    @reports_failures
    def load_input(self, context: InputContext) -> Path | str:
        return storage.resolve(_existing(self.path_for(context), context))
