"""Turning stage results into Dagster metadata: parameters with their hash, results as JSON.

Figures are written and previewed by the ``figures`` resource (:class:`resources.figures.FigureStore`)."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from dagster import MetadataValue


def params_metadata(params, stage_hash: str) -> dict[str, Any]:
    """The parameters a stage used (a dataclass, or a dict of them) and their hash."""
    return {"parameters": MetadataValue.json(jsonable(params)), "parameters_hash": stage_hash}


def jsonable(v):
    """Parameters and results as plain JSON values (dataclasses, tuples and numpy scalars converted)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return jsonable(dataclasses.asdict(v))
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v
