"""Entry points kept for the lab's scripts; the front end itself lives with the Dagster code.

``python -m ace_neuro.pipelines.miniscope ...`` runs :func:`ace_assets.cli.main`, and
``from ace_neuro.pipelines.miniscope import MiniscopePipeline`` gives
:class:`ace_assets.pipeline.MiniscopePipeline`. The names are looked up on first use, so
importing :mod:`ace_neuro` (or this module) never imports Dagster.
"""
from __future__ import annotations

import importlib
import sys

#: name -> module that defines it
_FRONT_END = {
    "MiniscopePipeline": "ace_assets.pipeline", "PipelineError": "ace_assets.pipeline",
    "PipelineResult": "ace_assets.pipeline", "ORIGINAL_ARGUMENTS_NOT_NEEDED": "ace_assets.pipeline",
    "parameter_overrides": "ace_assets.pipeline", "resolve_storage_root": "ace_assets.pipeline",
    "main": "ace_assets.cli", "build_parser": "ace_assets.cli", "run_arguments": "ace_assets.cli",
    "EXIT_CODES": "ace_assets.cli",
}

__all__ = sorted(_FRONT_END)


def __getattr__(name: str):
    if name in _FRONT_END:
        return getattr(importlib.import_module(_FRONT_END[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(importlib.import_module("ace_assets.cli").main())
