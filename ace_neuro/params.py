"""Typed, validated parameters for every stage.

One frozen dataclass per stage. They are built once, at the boundary, from a
mapping of the lab's CaImAn-style names (a row of ``analysis_parameters.csv``
already parsed into Python values, plus explicit overrides) by
:func:`build_pipeline_params`. Inside the library, stages receive these objects
and never look at raw CSV cells.

Unset values (``None``) fall back to the defaults of SPEC section 1; an invalid
value raises :class:`ParameterError` naming the parameter, the value, what was
expected and where it came from.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

log = logging.getLogger(__name__)


class ParameterError(ValueError):
    """A parameter value that cannot be used. The message says which and how to fix it."""


# --------------------------------------------------------------------------- helpers
def _fail(name: str, value: Any, expected: str, source: str) -> ParameterError:
    where = f" (from {source})" if source else ""
    return ParameterError(
        f"parameter '{name}' = {value!r}{where}: expected {expected}. "
        f"Fix the cell or leave it empty to use the default."
    )


def _as_bool(name: str, value: Any, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise _fail(name, value, "TRUE or FALSE", source)


def _as_float(name: str, value: Any, source: str, *, lo: float | None = None,
              hi: float | None = None, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(name, value, "a number", source)
    v = float(value)
    if v != v:  # NaN
        raise _fail(name, value, "a number", source)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise _fail(name, value, f"a number {'>' if lo_open else '>='} {lo}", source)
    if hi is not None and v > hi:
        raise _fail(name, value, f"a number <= {hi}", source)
    return v


def _as_int(name: str, value: Any, source: str, *, lo: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
        raise _fail(name, value, "a whole number", source)
    v = int(value)
    if lo is not None and v < lo:
        raise _fail(name, value, f"a whole number >= {lo}", source)
    return v


def _as_pair(name: str, value: Any, source: str, *, kind=int, lo: float = 0) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _fail(name, value, "a pair such as (3, 3)", source)
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(name, value, "a pair of numbers such as (3, 3)", source)
        if kind is int and float(v) != int(v):
            raise _fail(name, value, "a pair of whole numbers such as (3, 3)", source)
        if v < lo:
            raise _fail(name, value, f"a pair of numbers >= {lo}", source)
        out.append(kind(v))
    return tuple(out)


def _as_choice(name: str, value: Any, source: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise _fail(name, value, "one of " + ", ".join(repr(c) for c in choices), source)
    return value.strip().lower()


class _Reader:
    """Takes values out of a name->value mapping, remembering which names were used."""

    def __init__(self, values: Mapping[str, Any], source: str):
        self.values = dict(values)
        self.source = source
        self.used: set[str] = set()

    def get(self, *names: str) -> Any:
        for n in names:
            self.used.add(n)
        for n in names:
            if n in self.values and self.values[n] is not None:
                return self.values[n]
        return None


# --------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class CropParams:
    """SPEC 3.1. ``coords`` = (x0, y0, x1, y1), origin bottom-left, y up; None = no crop."""

    enabled: bool = True
    coords: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class DetrendParams:
    """SPEC 3.2. ``method`` None disables detrending."""

    method: str | None = None  # 'median' | 'linear'


@dataclass(frozen=True)
class DffParams:
    """SPEC 3.3."""

    enabled: bool = False
    method: str = "delta_f_over_sqrt_f"  # or 'delta_f_over_f'
    secs_window: float = 5.0
    quantile_min: float = 8.0


@dataclass(frozen=True)
class MotionParams:
    """SPEC 3.4 (NoRMCorre-style)."""

    enabled: bool = True
    pw_rigid: bool = True
    max_shifts: tuple[int, int] = (15, 15)
    gSig_filt: tuple[int, int] | None = (7, 7)
    strides: tuple[int, int] = (48, 48)
    overlaps: tuple[int, int] = (24, 24)
    max_deviation_rigid: int = 7
    border_nan: str = "copy"  # 'copy' | 'nan' | 'zero'
    shifts_opencv: bool = True
    niter_rig: int = 1
    upsample_factor_grid: int = 4
    use_suggested: bool = False  # CSV use_suggested_params: gSig_filt from the observed footprint width


@dataclass(frozen=True)
class CnmfeParams:
    """SPEC 3.5 (CNMF-E, Zhou et al. 2018)."""

    enabled: bool = True
    method_init: str = "corr_pnr"
    K: int | None = None
    gSig: tuple[int, int] = (3, 3)
    gSiz: tuple[int, int] = (13, 13)
    min_corr: float = 0.8
    min_pnr: float = 10.0
    ring_size_factor: float = 1.4
    center_psf: bool = True
    nb: int = 0
    ssub: int = 1
    tsub: int = 2
    ssub_B: int = 2
    rf: int | None = 40
    stride: int = 20
    p: int = 1
    decay_time: float = 0.4
    merge_thr: float = 0.7
    del_duplicates: bool = True
    normalize_init: bool = False
    update_background_components: bool = True
    only_init: bool = True
    low_rank_background: bool | None = None
    nb_patch: int = 0
    border_pix: int = 0
    method_deconvolution: str = "oasis"
    use_suggested: bool = False


@dataclass(frozen=True)
class EvaluationParams:
    """SPEC 3.6."""

    min_SNR: float = 2.5
    rval_thr: float = 0.85
    use_cnn: bool = False


@dataclass(frozen=True)
class EventParams:
    """SPEC 3.7. ``method``: 'noise' (recommended), 'derivative' (the original's) or 'spikes'."""

    enabled: bool = True
    method: str = "noise"
    derivative_for_estimates: str = "first"  # 'zeroth' | 'first' | 'second'
    event_height: float = 5.0
    noise_threshold: float = 4.0  # in units of the trace's robust noise (MAD-based sigma)


@dataclass(frozen=True)
class FilterParams:
    """SPEC 3.8."""

    phase_enabled: bool = True
    filter_enabled: bool = True
    n: int = 2
    cut: tuple[float, float] = (0.1, 1.5)
    ftype: str = "butter"  # or 'fir'
    btype: str = "bandpass"  # 'bandpass' | 'lowpass' | 'highpass' | 'bandstop'


@dataclass(frozen=True)
class SpectrogramParams:
    """SPEC 3.9."""

    enabled: bool = True
    window_length: float = 30.0
    window_step: float = 3.0
    freq_lims: tuple[float, float] = (0.0, 15.0)
    time_bandwidth: float = 2.0


@dataclass(frozen=True)
class PipelineParams:
    """Every stage's parameters for one experiment line."""

    crop: CropParams = field(default_factory=CropParams)
    detrend: DetrendParams = field(default_factory=DetrendParams)
    dff: DffParams = field(default_factory=DffParams)
    motion: MotionParams = field(default_factory=MotionParams)
    cnmfe: CnmfeParams = field(default_factory=CnmfeParams)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)
    events: EventParams = field(default_factory=EventParams)
    filter: FilterParams = field(default_factory=FilterParams)
    spectrogram: SpectrogramParams = field(default_factory=SpectrogramParams)
    engine: str = "native"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)



# Every public (CSV) name the platform understands, by stage.
KNOWN_PARAMETERS: frozenset[str] = frozenset({
    "crop", "crop_coords",
    "detrend_method", "df_over_f", "df_over_f_method", "secs_window", "quantile_min",
    "apply_motion_correction", "pw_rigid", "max_shifts", "gSig_filt", "strides", "overlaps",
    "max_deviation_rigid", "border_nan", "shifts_opencv", "niter_rig", "upsample_factor_grid",
    "run_CNMFE", "method_init", "K", "gSig", "gSiz", "min_corr", "min_pnr", "ring_size_factor",
    "center_psf", "nb", "ssub", "tsub", "ssub_B", "rf", "stride", "p", "decay_time", "merge_thr",
    "del_duplicates", "normalize_init", "update_background_components", "only_init",
    "low_rank_background", "nb_patch", "border_pix", "method_deconvolution", "use_suggested_params",
    "min_SNR", "rval_thr", "use_cnn",
    "find_calcium_events", "event_method", "derivative_for_estimates", "event_height",
    "event_noise_threshold",
    "compute_miniscope_phase", "filter_miniscope_data", "n", "cut", "ftype", "btype",
    "compute_miniscope_spectrogram", "window_length", "window_step", "freq_lims", "time_bandwidth",
    "engine",
})

# CaImAn names users may have in their CSVs that this platform does not implement.
UNSUPPORTED_CAIMAN_PARAMETERS: frozenset[str] = frozenset({
    "SNR_lowest", "cnn_lowest", "min_cnn_thr", "gnb", "splits_rig", "splits_els", "num_splits_to_process_rig",
    "num_splits_to_process_els", "max_deviation_patch", "nonneg_movie", "use_cuda", "memory_fact",
    "n_processes", "Ain", "ring_size", "bas_nonneg", "noise_range", "s_min", "fudge_factor",
    "block_size_temp", "block_size_spat", "check_nan", "remove_very_bad_comps", "rolling_sum",
    "rolling_length", "init_iter", "min_pixel", "batch_update_suff_stat",
})


def build_pipeline_params(values: Mapping[str, Any], *, source: str = "") -> tuple[PipelineParams, list[str]]:
    """Build every stage's parameters from CaImAn-style names.

    Parameters
    ----------
    values
        Name -> already-parsed value (``None`` = not set). Unknown names are ignored here;
        callers report them (see :func:`unknown_parameter_names`).
    source
        Where the values came from, for error messages (e.g. ``"analysis_parameters.csv row 5"``).

    Returns
    -------
    params, notes
        The validated parameters, and human-readable notes on derived values.
    """
    r = _Reader(values, source)
    notes: list[str] = []

    # crop ------------------------------------------------------------------
    coords = r.get("crop_coords", "crop")
    crop_enabled = True
    if isinstance(coords, bool):
        crop_enabled, coords = coords, None
    if coords is not None:
        if not isinstance(coords, (tuple, list)) or len(coords) != 4 or any(
            isinstance(c, bool) or not isinstance(c, (int, float)) or float(c) != int(c) for c in coords
        ):
            raise _fail("crop_coords", coords, "four whole numbers (x0, y0, x1, y1) such as (67, 503, 555, 61)", source)
        coords = tuple(int(c) for c in coords)
    crop = CropParams(enabled=crop_enabled, coords=coords)

    # detrend / dF/F --------------------------------------------------------------
    dm = r.get("detrend_method")
    if isinstance(dm, bool) and dm is False:
        dm = None
    detrend = DetrendParams(method=None if dm is None else _as_choice("detrend_method", dm, source, ("median", "linear")))
    d = DffParams()
    dff = DffParams(
        enabled=_as_bool("df_over_f", v, source) if (v := r.get("df_over_f")) is not None else d.enabled,
        method=_as_choice("df_over_f_method", v, source, ("delta_f_over_sqrt_f", "delta_f_over_f"))
        if (v := r.get("df_over_f_method")) is not None else d.method,
        secs_window=_as_float("secs_window", v, source, lo=0, lo_open=True) if (v := r.get("secs_window")) is not None else d.secs_window,
        quantile_min=_as_float("quantile_min", v, source, lo=0, hi=100) if (v := r.get("quantile_min")) is not None else d.quantile_min,
    )

    # motion -------------------------------------------------------------------------
    m = MotionParams()
    gsf = r.get("gSig_filt")
    motion = MotionParams(
        enabled=_opt(r, "apply_motion_correction", _as_bool, m.enabled),
        pw_rigid=_opt(r, "pw_rigid", _as_bool, m.pw_rigid),
        max_shifts=_pair(r, "max_shifts", m.max_shifts),
        gSig_filt=m.gSig_filt if gsf is None else (None if gsf is False else _as_pair("gSig_filt", gsf, source)),
        strides=_pair(r, "strides", m.strides, lo=1),
        overlaps=_pair(r, "overlaps", m.overlaps),
        max_deviation_rigid=_opt(r, "max_deviation_rigid", lambda n, v, s: _as_int(n, v, s, lo=0), m.max_deviation_rigid),
        border_nan=_border(r, source),
        shifts_opencv=_opt(r, "shifts_opencv", _as_bool, m.shifts_opencv),
        niter_rig=_opt(r, "niter_rig", lambda n, v, s: _as_int(n, v, s, lo=1), m.niter_rig),
        upsample_factor_grid=_opt(r, "upsample_factor_grid", lambda n, v, s: _as_int(n, v, s, lo=1), m.upsample_factor_grid),
        use_suggested=_opt(r, "use_suggested_params", _as_bool, m.use_suggested),
    )

    # CNMF-E ----------------------------------------------------------------------
    c = CnmfeParams()
    gsig = _pair(r, "gSig", c.gSig, lo=1)
    gsiz_v = r.get("gSiz")
    if gsiz_v is None:
        gsiz = tuple(4 * g + 1 for g in gsig)
        notes.append(f"gSiz not set: using 4*gSig+1 = {gsiz}")
    else:
        gsiz = _as_pair("gSiz", gsiz_v, source, lo=1)
    method_init = _opt(r, "method_init", lambda n, v, s: _as_choice(n, v, s, ("corr_pnr",)), c.method_init)
    k = r.get("K")
    nb = _opt(r, "nb", lambda n, v, s: _as_int(n, v, s, lo=0), c.nb)
    if nb != 0:
        raise _fail("nb", nb, "0 (the exact ring background; low-rank global backgrounds are not implemented)", source)
    lrb = r.get("low_rank_background")
    if lrb not in (None, False):
        raise _fail("low_rank_background", lrb, "empty or FALSE (only the ring model is implemented)", source)
    nbp = _opt(r, "nb_patch", lambda n, v, s: _as_int(n, v, s, lo=0), c.nb_patch)
    if nbp != 0:
        raise _fail("nb_patch", nbp, "0 (the ring model is used in every patch)", source)
    rf_v = r.get("rf")
    cnmfe = CnmfeParams(
        enabled=_opt(r, "run_CNMFE", _as_bool, c.enabled),
        method_init=method_init,
        K=None if k is None else _as_int("K", k, source, lo=1),
        gSig=gsig,
        gSiz=gsiz,
        min_corr=_opt(r, "min_corr", lambda n, v, s: _as_float(n, v, s, lo=0, hi=1), c.min_corr),
        min_pnr=_opt(r, "min_pnr", lambda n, v, s: _as_float(n, v, s, lo=0), c.min_pnr),
        ring_size_factor=_opt(r, "ring_size_factor", lambda n, v, s: _as_float(n, v, s, lo=0, lo_open=True), c.ring_size_factor),
        center_psf=_opt(r, "center_psf", _as_bool, c.center_psf),
        nb=nb,
        ssub=_opt(r, "ssub", lambda n, v, s: _as_int(n, v, s, lo=1), c.ssub),
        tsub=_opt(r, "tsub", lambda n, v, s: _as_int(n, v, s, lo=1), c.tsub),
        ssub_B=_opt(r, "ssub_B", lambda n, v, s: _as_int(n, v, s, lo=1), c.ssub_B),
        rf=None if rf_v is None and "rf" in values else (c.rf if rf_v is None else _as_int("rf", rf_v, source, lo=1)),
        stride=_opt(r, "stride", lambda n, v, s: _as_int(n, v, s, lo=0), c.stride),
        p=_opt(r, "p", lambda n, v, s: _as_int(n, v, s, lo=0), c.p),
        decay_time=_opt(r, "decay_time", lambda n, v, s: _as_float(n, v, s, lo=0, lo_open=True), c.decay_time),
        merge_thr=_opt(r, "merge_thr", lambda n, v, s: _as_float(n, v, s, lo=0, hi=1), c.merge_thr),
        del_duplicates=_opt(r, "del_duplicates", _as_bool, c.del_duplicates),
        normalize_init=_opt(r, "normalize_init", _as_bool, c.normalize_init),
        update_background_components=_opt(r, "update_background_components", _as_bool, c.update_background_components),
        only_init=_opt(r, "only_init", _as_bool, c.only_init),
        low_rank_background=None,
        nb_patch=nbp,
        border_pix=_opt(r, "border_pix", lambda n, v, s: _as_int(n, v, s, lo=0), c.border_pix),
        method_deconvolution=_opt(r, "method_deconvolution", lambda n, v, s: _as_choice(n, v, s, ("oasis",)), c.method_deconvolution),
        use_suggested=_opt(r, "use_suggested_params", _as_bool, c.use_suggested),
    )
    if cnmfe.p > 2:
        raise _fail("p", cnmfe.p, "0, 1 or 2 (AR order)", source)

    # evaluation -------------------------------------------------------------------
    e = EvaluationParams()
    use_cnn = _opt(r, "use_cnn", _as_bool, e.use_cnn)
    if use_cnn:
        raise _fail("use_cnn", True, "FALSE: no CNN classifier ships with this platform", source)
    evaluation = EvaluationParams(
        min_SNR=_opt(r, "min_SNR", lambda n, v, s: _as_float(n, v, s, lo=0), e.min_SNR),
        rval_thr=_opt(r, "rval_thr", lambda n, v, s: _as_float(n, v, s, lo=-1, hi=1), e.rval_thr),
        use_cnn=False,
    )

    # events ------------------------------------------------------------------------
    ev = EventParams()
    events = EventParams(
        enabled=_opt(r, "find_calcium_events", _as_bool, ev.enabled),
        method=_opt(r, "event_method", lambda n, v, s: _as_choice(n, v, s, ("noise", "derivative", "spikes")), ev.method),
        derivative_for_estimates=_opt(
            r, "derivative_for_estimates", lambda n, v, s: _as_choice(n, v, s, ("zeroth", "first", "second")),
            ev.derivative_for_estimates),
        event_height=_opt(r, "event_height", lambda n, v, s: _as_float(n, v, s), ev.event_height),
        noise_threshold=_opt(r, "event_noise_threshold", lambda n, v, s: _as_float(n, v, s, lo=0, lo_open=True), ev.noise_threshold),
    )

    # phase / filter ------------------------------------------------------------------
    f = FilterParams()
    cut_v = r.get("cut")
    if cut_v is None:
        cut = f.cut
    elif isinstance(cut_v, (int, float)) and not isinstance(cut_v, bool):
        cut = (float(cut_v), float(cut_v))
    else:
        cut = _as_pair("cut", cut_v, source, kind=float)
    filt = FilterParams(
        phase_enabled=_opt(r, "compute_miniscope_phase", _as_bool, f.phase_enabled),
        filter_enabled=_opt(r, "filter_miniscope_data", _as_bool, f.filter_enabled),
        n=_opt(r, "n", lambda n, v, s: _as_int(n, v, s, lo=1), f.n),
        cut=cut,
        ftype=_opt(r, "ftype", lambda n, v, s: _as_choice(n, v, s, ("butter", "fir")), f.ftype),
        btype=_opt(r, "btype", lambda n, v, s: _as_choice(n, v, s, ("bandpass", "lowpass", "highpass", "bandstop")), f.btype),
    )
    if filt.btype in ("bandpass", "bandstop") and not (0 < filt.cut[0] < filt.cut[1]):
        raise _fail("cut", cut_v, "(low, high) in Hz with 0 < low < high", source)

    # spectrogram ----------------------------------------------------------------------
    sp = SpectrogramParams()
    spectrogram = SpectrogramParams(
        enabled=_opt(r, "compute_miniscope_spectrogram", _as_bool, sp.enabled),
        window_length=_opt(r, "window_length", lambda n, v, s: _as_float(n, v, s, lo=0, lo_open=True), sp.window_length),
        window_step=_opt(r, "window_step", lambda n, v, s: _as_float(n, v, s, lo=0, lo_open=True), sp.window_step),
        freq_lims=_pair(r, "freq_lims", sp.freq_lims, kind=float),
        time_bandwidth=_opt(r, "time_bandwidth", lambda n, v, s: _as_float(n, v, s, lo=1), sp.time_bandwidth),
    )
    if spectrogram.freq_lims[0] >= spectrogram.freq_lims[1]:
        raise _fail("freq_lims", spectrogram.freq_lims, "(low, high) in Hz with low < high", source)

    engine = _opt(r, "engine", lambda n, v, s: _as_choice(n, v, s, ("native", "caiman")), "native")
    params = PipelineParams(crop=crop, detrend=detrend, dff=dff, motion=motion, cnmfe=cnmfe,
                            evaluation=evaluation, events=events, filter=filt,
                            spectrogram=spectrogram, engine=engine)
    return params, notes


def unknown_parameter_names(names) -> tuple[list[str], list[str]]:
    """Split names into (unsupported CaImAn names, unknown names). Known names are dropped."""
    unsupported, unknown = [], []
    for n in names:
        if n in KNOWN_PARAMETERS:
            continue
        (unsupported if n in UNSUPPORTED_CAIMAN_PARAMETERS else unknown).append(n)
    return unsupported, unknown


# small builders (keep the table above readable) -------------------------------------------
def _opt(r: _Reader, name: str, conv, default):
    v = r.get(name)
    return default if v is None else conv(name, v, r.source)


def _pair(r: _Reader, name: str, default, *, kind=int, lo: float = 0):
    v = r.get(name)
    return default if v is None else _as_pair(name, v, r.source, kind=kind, lo=lo)


def _border(r: _Reader, source: str) -> str:
    v = r.get("border_nan")
    if v is None:
        return "copy"
    if v is True:
        return "nan"
    if v is False:
        return "zero"
    return _as_choice("border_nan", v, source, ("copy", "nan", "zero"))



__all__ = [
    "ParameterError", "CropParams", "DetrendParams", "DffParams", "MotionParams", "CnmfeParams",
    "EvaluationParams", "EventParams", "FilterParams", "SpectrogramParams", "PipelineParams",
    "build_pipeline_params", "unknown_parameter_names", "KNOWN_PARAMETERS", "params_to_dict", "params_from_dict",
    "params_hash",
]


# --------------------------------------------------------------------------- snapshots
STAGE_PARAMETER_TYPES = {cls.__name__: cls for cls in (
    CropParams, DetrendParams, DffParams, MotionParams, CnmfeParams, EvaluationParams, EventParams,
    FilterParams, SpectrogramParams)}


def params_to_dict(params) -> dict[str, Any]:
    """A stage's parameters as JSON-ready data, with their type name (for :func:`params_from_dict`)."""
    return {"type": type(params).__name__, "values": dataclasses.asdict(params)}


def params_from_dict(data: Mapping[str, Any]):
    """Rebuild a stage's parameter dataclass from :func:`params_to_dict` output (lists back to tuples)."""
    try:
        cls = STAGE_PARAMETER_TYPES[data["type"]]
    except KeyError:
        raise ParameterError(f"unknown parameter type {data.get('type')!r}") from None
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data["values"].items() if k in names}
    return cls(**values)


def params_hash(params) -> str:
    """Short, stable hash of one stage's parameters."""
    payload = json.dumps(dataclasses.asdict(params), sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
