"""Turning stage results into Dagster metadata, in the order a scientist reads it.

Every asset's metadata opens with its findings in rounded numbers (:func:`rounded`,
:func:`quartiles`), then its figures, and ends with the parameters: their hash and one compact
table named by the CSV's columns (:func:`params_metadata`). Figures are written and previewed by
the ``figures`` resource (:class:`resources.figures.FigureStore`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable

import numpy as np
from dagster import MetadataValue

from ace_neuro.params.declare import StageParams, declarations

#: significant digits of the numbers shown in the UI
DIGITS = 3


def rounded(x: float, digits: int = DIGITS) -> float:
    """``x`` to ``digits`` significant digits (0.004473893903195858 -> 0.00447); NaN and inf unchanged."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def quartiles(values: Iterable[float]) -> str:
    """``"q1 / median / q3"`` of the finite values, rounded ("-" when there are none)."""
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return "-"
    q1, q2, q3 = np.percentile(v, [25, 50, 75])
    return f"{rounded(q1):g} / {rounded(q2):g} / {rounded(q3):g}"


def advice_markdown(messages: Iterable[str]) -> MetadataValue:
    """Parameter advice as a bulleted list (or that the CSV's values agree with the data)."""
    lines = [f"- {m}" for m in messages]
    return MetadataValue.md("\n".join(lines) or "CSV values agree with the data")


def _cell(v: Any) -> str:
    v = jsonable(v)
    if v is None:
        return "empty"
    if isinstance(v, bool):
        return str(v).upper()
    if isinstance(v, float):
        return f"{rounded(v):g}"
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    return str(v).replace("|", "\\|")


def parameter_rows(params: StageParams) -> list[tuple[str, str]]:
    """(CSV column, value) for each declared parameter of one stage."""
    return [(d.name, _cell(getattr(params, d.field))) for d in declarations(type(params))]


def parameter_table(params: StageParams | dict[str, StageParams]) -> str:
    """One markdown table of a stage's parameters by CSV column (several stages: one table, stage first)."""
    stages = params if isinstance(params, dict) else {"": params}
    many = len(stages) > 1
    head = "| stage | parameter | value |\n|---|---|---|" if many else "| parameter | value |\n|---|---|"
    rows = [f"| {stage} | {name} | {value} |" if many else f"| {name} | {value} |"
            for stage, p in stages.items() for name, value in parameter_rows(p)]
    return "\n".join([head, *rows])


def params_metadata(params: StageParams | dict[str, StageParams], stage_hash: str) -> dict[str, Any]:
    """The parameters a stage used, last in its metadata: their hash, then one compact table."""
    return {"parameters_hash": stage_hash, "parameters": MetadataValue.md(parameter_table(params))}


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
