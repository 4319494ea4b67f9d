"""From the lab's CaImAn-style names to typed parameters: defaults < CSV row < explicit arguments.

Inside the library, stages receive the dataclasses of :mod:`.stages` and never look at raw
CSV cells. An invalid value raises :class:`~ace_neuro.errors.ParameterError` naming the
parameter, the value, what was expected, and the file and row (or "the arguments given")
it came from.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from ..errors import ParameterError
from .declare import NOT_THIS_FIELD, Invalid, Parameter, declarations
from .stages import PIPELINE_FIELDS, STAGE_TYPES, PipelineParams, StageParams


def all_declarations() -> Iterator[Parameter]:
    """Every declared parameter of every stage, in stage order."""
    for cls in STAGE_TYPES:
        yield from declarations(cls)


#: Every CSV name the platform understands.
KNOWN_PARAMETERS: frozenset[str] = frozenset(n for d in all_declarations() for n in d.csv)

# CaImAn names users may have in their CSVs that this platform does not implement.
UNSUPPORTED_CAIMAN_PARAMETERS: frozenset[str] = frozenset({
    "SNR_lowest", "cnn_lowest", "min_cnn_thr", "gnb", "splits_rig", "splits_els", "num_splits_to_process_rig",
    "num_splits_to_process_els", "max_deviation_patch", "nonneg_movie", "use_cuda", "memory_fact",
    "n_processes", "Ain", "ring_size", "bas_nonneg", "noise_range", "s_min", "fudge_factor",
    "block_size_temp", "block_size_spat", "check_nan", "remove_very_bad_comps", "rolling_sum",
    "rolling_length", "init_iter", "min_pixel", "batch_update_suff_stat",
})


@dataclass(frozen=True)
class ParameterLayer:
    """Values by CSV name from one place, for messages: a CSV row (``file``, ``row``) or the arguments given."""

    values: Mapping[str, Any]
    source: str = ""
    file: str | None = None
    row: int | None = None


def build_pipeline_params(values: Mapping[str, Any] | Sequence[ParameterLayer], *,
                          source: str = "") -> tuple[PipelineParams, list[str]]:
    """Every stage's parameters from CaImAn-style names.

    Parameters
    ----------
    values
        Name -> already-parsed value (``None`` = not set), or several :class:`ParameterLayer`,
        later ones winning (the CSV row, then the explicit arguments). Unknown names are
        ignored here; callers report them (see :func:`unknown_parameter_names`).
    source
        Where a plain mapping came from, for messages (e.g. ``"analysis_parameters.csv row 5"``).

    Returns
    -------
    params, notes
        The validated parameters, and human-readable notes on derived values.
    """
    layers = [ParameterLayer(values, source)] if isinstance(values, Mapping) else list(values)
    notes: list[str] = []
    stages = {name: _build_stage(cls, layers, notes) for name, cls in PIPELINE_FIELDS.items()}
    return PipelineParams(**stages), notes


def _build_stage(cls: type[StageParams], layers: Sequence[ParameterLayer], notes: list[str]) -> StageParams:
    chosen: dict[str, Any] = {}
    blame: dict[str, ParameterLayer] = {}
    derived = []
    for decl in declarations(cls):
        found = _resolve(decl, layers)
        if found is None:
            if decl.derive is not None:
                derived.append(decl)
            continue
        chosen[decl.field], blame[decl.field] = found
    for decl in derived:
        defaults = {d.field: d.default for d in declarations(cls)}
        value = decl.derive({**defaults, **chosen})
        chosen[decl.field] = value
        notes.append(f"{decl.name} not set: using {decl.derive_text} = {value}")
    try:
        return cls(**chosen)
    except ParameterError as exc:  # a rule between fields: say where the value came from
        decl = next((d for d in declarations(cls) if d.name == exc.parameter), None)
        layer = blame.get(decl.field) if decl is not None else None
        if decl is None or layer is None or not hasattr(exc, "expected"):
            raise
        raise decl.error(exc.value, exc.expected, layer.source, file=layer.file, row=layer.row) from None


def _resolve(decl: Parameter, layers: Sequence[ParameterLayer]) -> tuple[Any, ParameterLayer] | None:
    """(value, layer it came from) of one parameter, the last layer that sets it winning; None = not set."""
    for layer in reversed(layers):
        for name in decl.csv:
            if name not in layer.values:
                continue
            raw = layer.values[name]
            if raw is None:
                if decl.empty_is_value and name == decl.name:
                    return None, layer
                continue
            try:
                value = decl.kind.convert(raw)
            except Invalid as exc:
                raise decl.error(raw, str(exc), layer.source, file=layer.file, row=layer.row) from None
            if value is NOT_THIS_FIELD:
                continue
            return value, layer
    return None


def unknown_parameter_names(names) -> tuple[list[str], list[str]]:
    """Split names into (unsupported CaImAn names, unknown names). Known names are dropped."""
    unsupported, unknown = [], []
    for n in names:
        if n in KNOWN_PARAMETERS:
            continue
        (unsupported if n in UNSUPPORTED_CAIMAN_PARAMETERS else unknown).append(n)
    return unsupported, unknown


def check_parameter_names(values: Mapping[str, Any], *, given_as: str = "parameter") -> dict[str, Any]:
    """The given (not ``None``) values, after checking every name is a known parameter.

    Raises
    ------
    ParameterError
        For a name the platform does not know, with the closest known names.
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name not in KNOWN_PARAMETERS:
            close = difflib.get_close_matches(name, sorted(KNOWN_PARAMETERS), n=3)
            maybe = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ParameterError(f"{given_as} '{name}' is not one the platform knows.{maybe}", parameter=name,
                                 fix="use an analysis_parameters.csv column name (python -m "
                                     "ace_neuro.pipelines.miniscope --list-parameters shows them all).")
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


# --------------------------------------------------------------------------- snapshots
STAGE_PARAMETER_TYPES = {cls.__name__: cls for cls in STAGE_TYPES}


def params_to_dict(params: StageParams) -> dict[str, Any]:
    """A stage's parameters as JSON-ready data, with their type name (for :func:`params_from_dict`)."""
    return {"type": type(params).__name__, "values": dataclasses.asdict(params)}


def params_from_dict(data: Mapping[str, Any]) -> StageParams:
    """Rebuild (and validate) a stage's parameter dataclass from :func:`params_to_dict` output."""
    try:
        cls = STAGE_PARAMETER_TYPES[data["type"]]
    except KeyError:
        raise ParameterError(f"unknown parameter type {data.get('type')!r}") from None
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data["values"].items() if k in names}
    return cls(**values)


def params_hash(params: StageParams) -> str:
    """Short, stable hash of one stage's parameters."""
    payload = json.dumps(dataclasses.asdict(params), sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
