"""Every stage's parameters: one frozen dataclass per stage, one declared field per parameter.

To add a parameter, add one ``param(...)`` field here and use it in the stage: the CSV
parsing, validation, known names, snapshot assets, CLI help and README table follow.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .declare import Bool, Choice, CropBox, CropSwitch, Number, Pair, StageParams, declared, param

_INT_GE0 = Number(integer=True, lo=0)
_INT_GE1 = Number(integer=True, lo=1)
_POSITIVE = Number(lo=0, lo_open=True)
_FRACTION = Number(lo=0, hi=1)


def _use_suggested() -> Any:
    """``use_suggested_params`` is read by motion correction (gSig_filt) and CNMF-E (gSig, gSiz, min_corr,
    min_pnr): one CSV column, one declaration, two stages."""
    return param(False, csv="use_suggested_params", kind=Bool(),
                 help="replace gSig_filt, gSig, gSiz, min_corr and min_pnr by values measured on the recording")


@dataclass(frozen=True)
class CropParams(StageParams):
    """Crop. ``coords`` = (x0, y0, x1, y1), origin bottom-left, y up; None = choose in the window (or no crop
    when headless)."""

    STAGE = "crop"
    enabled: bool = param(True, csv=("crop", "crop_coords"), kind=CropSwitch(),
                          help="FALSE skips the crop stage")
    coords: tuple[int, int, int, int] | None = param(
        None, csv=("crop_coords", "crop"), kind=CropBox(),
        help="crop corners, origin bottom-left, y up; empty: choose in the crop window (headless: no crop)")


@dataclass(frozen=True)
class DetrendParams(StageParams):
    """Detrending of the movie before dF/F. ``method`` None disables it."""

    STAGE = "detrend"
    method: str | None = param(None, csv="detrend_method",
                               kind=Choice((None, "median", "linear"), aliases=((False, None),)),
                               help="remove slow drift before dF/F (median: one offset per frame; linear: a line "
                                    "per pixel); empty or FALSE: no detrending")


@dataclass(frozen=True)
class DffParams(StageParams):
    """dF/F of the movie (a running low quantile as F0)."""

    STAGE = "dff"
    enabled: bool = param(False, csv="df_over_f", kind=Bool(), help="compute the dF/F movie before motion correction")
    method: str = param("delta_f_over_sqrt_f", csv="df_over_f_method",
                        kind=Choice(("delta_f_over_sqrt_f", "delta_f_over_f")),
                        help="(F - F0) / sqrt(F0) or (F - F0) / F0")
    secs_window: float = param(5.0, csv="secs_window", kind=_POSITIVE, help="F0 window, seconds")
    quantile_min: float = param(8.0, csv="quantile_min", kind=Number(lo=0, hi=100),
                                help="F0 = this percentile of the window")


@dataclass(frozen=True)
class MotionParams(StageParams):
    """Motion correction (NoRMCorre-style rigid, then piecewise-rigid)."""

    STAGE = "motion"
    enabled: bool = param(True, csv="apply_motion_correction", kind=Bool(), help="correct motion")
    pw_rigid: bool = param(True, csv="pw_rigid", kind=Bool(), help="piecewise-rigid after rigid")
    max_shifts: tuple[int, int] = param((15, 15), csv="max_shifts", kind=Pair(), help="largest rigid shift (y, x), px")
    gSig_filt: tuple[int, int] | None = param(
        (7, 7), csv="gSig_filt", kind=Pair(lo=1, off=False),
        help="high-pass scale for registration, px: about a neuron's half-width as the movie shows it "
             "(1-photon blur makes it wider than the soma); FALSE: no filter")
    strides: tuple[int, int] = param((48, 48), csv="strides", kind=Pair(lo=1), help="patch spacing (pw-rigid), px")
    overlaps: tuple[int, int] = param((24, 24), csv="overlaps", kind=Pair(), help="patch overlap (pw-rigid), px")
    max_deviation_rigid: int = param(7, csv="max_deviation_rigid", kind=_INT_GE0,
                                     help="largest patch shift away from the rigid shift, px")
    border_nan: str = param("copy", csv="border_nan", kind=Choice(("copy", "nan", "zero"),
                                                                  aliases=((True, "nan"), (False, "zero"))),
                            help="fill of the borders uncovered by a shift")
    shifts_opencv: bool = param(True, csv="shifts_opencv", kind=Bool(), help="warp with OpenCV (else SciPy)")
    niter_rig: int = param(1, csv="niter_rig", kind=_INT_GE1,
                           help="template refinements: the template is re-estimated niter_rig + 1 times on a "
                                "frame sample, then the movie is corrected once")
    upsample_factor_grid: int = param(4, csv="upsample_factor_grid", kind=_INT_GE1,
                                      help="CaImAn's patch-grid upsampling; no effect here: the native engine "
                                           "interpolates the patch shifts to every pixel")
    use_suggested: bool = _use_suggested()

    def check_together(self) -> None:
        if self.pw_rigid and any(o >= s for o, s in zip(self.overlaps, self.strides)):
            raise declared(MotionParams, "overlaps").error(
                self.overlaps, f"overlaps to be smaller than strides = {self.strides} along both axes "
                               f"(reduce overlaps or increase strides)")


def _gsiz_from_gsig(values: dict) -> tuple[int, int]:
    return tuple(4 * g + 1 for g in values["gSig"])


@dataclass(frozen=True)
class CnmfeParams(StageParams):
    """Source extraction, CNMF-E (Zhou et al. 2018)."""

    STAGE = "cnmfe"
    enabled: bool = param(True, csv="run_CNMFE", kind=Bool(), help="run CNMF-E")
    method_init: str = param("corr_pnr", csv="method_init", kind=Choice(
        ("corr_pnr",), why="the only 1-photon initialisation implemented"), help="seed initialisation")
    K: int | None = param(None, csv="K", kind=Number(integer=True, lo=1, none_ok=True),
                          help="most components per patch; empty: no cap")
    gSig: tuple[int, int] = param((3, 3), csv="gSig", kind=Pair(lo=1),
                                  help="neuron half-width (Gaussian sigma) as the movie shows it, px; on "
                                       "1-photon usually wider than the soma radius (see the parameter advice)")
    gSiz: tuple[int, int] = param((13, 13), csv="gSiz", kind=Pair(lo=1), help="largest neuron diameter, px",
                                  derive=_gsiz_from_gsig, derive_text="4*gSig+1")
    min_corr: float = param(0.8, csv="min_corr", kind=_FRACTION, help="seed: least local correlation")
    min_pnr: float = param(10.0, csv="min_pnr", kind=Number(lo=0), help="seed: least peak-to-noise ratio")
    ring_size_factor: float = param(1.4, csv="ring_size_factor", kind=_POSITIVE,
                                    help="background ring radius / gSiz")
    center_psf: bool = param(True, csv="center_psf", kind=Bool(), help="1-photon: centre the seed filter")
    nb: int = param(0, csv="nb", kind=Choice((0,), why="the exact ring background; low-rank backgrounds are "
                                                       "not implemented"), help="global background components")
    ssub: int = param(1, csv="ssub", kind=_INT_GE1, help="spatial downsampling for the initialisation")
    tsub: int = param(2, csv="tsub", kind=_INT_GE1, help="temporal downsampling for the initialisation")
    ssub_B: int = param(2, csv="ssub_B", kind=_INT_GE1, help="spatial downsampling of the ring background")
    rf: int | None = param(40, csv="rf", kind=Number(integer=True, lo=1, none_ok=True), empty_is_value=True,
                           help="patch half-size, px; an empty cell: the whole field in one patch")
    stride: int = param(20, csv="stride", kind=_INT_GE0, help="patch overlap: consecutive patches share stride + 1 px")
    p: int = param(1, csv="p", kind=Number(integer=True, lo=0, hi=2), help="AR order of the calcium dynamics")
    decay_time: float = param(0.4, csv="decay_time", kind=_POSITIVE, help="indicator decay, s")
    merge_thr: float = param(0.7, csv="merge_thr", kind=_FRACTION,
                             help="merge overlapping components above this trace correlation")
    del_duplicates: bool = param(True, csv="del_duplicates", kind=Bool(), help="remove duplicates across patches")
    normalize_init: bool = param(False, csv="normalize_init", kind=Bool(), help="normalise before initialisation")
    update_background_components: bool = param(True, csv="update_background_components", kind=Bool(),
                                                help="refit the background after each update")
    only_init: bool = param(True, csv="only_init", kind=Bool(), help="CaImAn's 1-photon mode")
    low_rank_background: bool | None = param(
        None, csv="low_rank_background", kind=Choice((None, False), why="only the ring model is implemented"),
        help="low-rank background in patches")
    nb_patch: int = param(0, csv="nb_patch", kind=Choice((0,), why="the ring model is used in every patch"),
                          help="background components per patch")
    border_pix: int = param(0, csv="border_pix", kind=_INT_GE0, help="pixels ignored at the frame border")
    method_deconvolution: str = param("oasis", csv="method_deconvolution", kind=Choice(("oasis",)),
                                      help="spike deconvolution")
    use_suggested: bool = _use_suggested()

    def check_together(self) -> None:
        if self.rf is not None and not self.stride < 2 * self.rf + 1:
            raise declared(CnmfeParams, "stride").error(
                self.stride, f"a whole number below 2*rf+1 = {2 * self.rf + 1} (the patch size)")


@dataclass(frozen=True)
class EvaluationParams(StageParams):
    """Which CNMF-E components are accepted."""

    STAGE = "evaluation"
    min_SNR: float = param(2.5, csv="min_SNR", kind=Number(lo=0), help="accept: least trace SNR")
    rval_thr: float = param(0.85, csv="rval_thr", kind=Number(lo=-1, hi=1),
                            help="accept: least footprint/movie correlation")
    use_cnn: bool = param(False, csv="use_cnn", kind=Bool(only=False, why="no CNN classifier ships with this "
                                                                          "platform"), help="CNN classifier")


@dataclass(frozen=True)
class EventParams(StageParams):
    """Calcium events. ``method``: 'noise' (recommended), 'derivative' (the original's) or 'spikes'."""

    STAGE = "event"
    enabled: bool = param(True, csv="find_calcium_events", kind=Bool(), help="detect calcium events")
    method: str = param("noise", csv="event_method", kind=Choice(("noise", "derivative", "spikes")),
                        help="threshold on the trace's noise, its derivative, or deconvolved spikes")
    derivative_for_estimates: str = param("first", csv="derivative_for_estimates",
                                          kind=Choice(("zeroth", "first", "second")),
                                          help="derivative method: which derivative is thresholded")
    event_height: float = param(5.0, csv="event_height", kind=Number(), help="derivative method: threshold")
    noise_threshold: float = param(4.0, csv="event_noise_threshold", kind=_POSITIVE,
                                   help="noise method: threshold in robust noise sigmas")


@dataclass(frozen=True)
class FilterParams(StageParams):
    """Band-pass filter and phase of the traces."""

    STAGE = "filter"
    phase_enabled: bool = param(True, csv="compute_miniscope_phase", kind=Bool(), help="compute the phase")
    filter_enabled: bool = param(True, csv="filter_miniscope_data", kind=Bool(), help="filter the traces")
    n: int = param(2, csv="n", kind=_INT_GE1, help="filter order")
    cut: tuple[float, float] = param((0.1, 1.5), csv="cut", kind=Pair(integer=False),
                                     help="cut-off frequencies (low, high), Hz; one number for low/high-pass")
    ftype: str = param("butter", csv="ftype", kind=Choice(("butter", "fir")), help="filter design")
    btype: str = param("bandpass", csv="btype", kind=Choice(("bandpass", "lowpass", "highpass", "bandstop")),
                       help="filter band")

    def check_together(self) -> None:
        if self.btype in ("bandpass", "bandstop") and not 0 < self.cut[0] < self.cut[1]:
            raise declared(FilterParams, "cut").error(self.cut, f"(low, high) in Hz with 0 < low < high for a "
                                                                f"{self.btype} filter")


@dataclass(frozen=True)
class SpectrogramParams(StageParams):
    """Multitaper spectrograms of the cropped field's mean fluorescence."""

    STAGE = "spectrogram"
    enabled: bool = param(True, csv="compute_miniscope_spectrogram", kind=Bool(), help="compute spectrograms")
    window_length: float = param(30.0, csv="window_length", kind=_POSITIVE, help="window, s")
    window_step: float = param(3.0, csv="window_step", kind=_POSITIVE, help="step between windows, s")
    freq_lims: tuple[float, float] = param((0.0, 15.0), csv="freq_lims", kind=Pair(integer=False),
                                           help="frequency range (low, high), Hz")
    time_bandwidth: float = param(2.0, csv="time_bandwidth", kind=Number(lo=1), help="multitaper time-bandwidth")

    def check_together(self) -> None:
        if self.freq_lims[0] >= self.freq_lims[1]:
            raise declared(SpectrogramParams, "freq_lims").error(self.freq_lims, "(low, high) in Hz with low < high")


@dataclass(frozen=True)
class ExportParams(StageParams):
    """What the line's NWB file holds beyond the results (segmentation, traces, events, shifts)."""

    STAGE = "export"
    include_movie: bool = param(False, csv="nwb_include_movie", kind=Bool(),
                                help="also write the motion-corrected movie into the NWB file (compressed, "
                                     "frame block by frame block)")


@dataclass(frozen=True)
class EngineParams(StageParams):
    """Which implementation runs the two heavy stages (motion correction and CNMF-E)."""

    STAGE = "engine"
    name: str = param("native", csv="engine", kind=Choice(("native", "caiman")),
                      help="'native' (this platform) or 'caiman' (CaImAn installed with conda)")


#: every stage's dataclass, in the order the stages run
STAGE_TYPES = (CropParams, DetrendParams, DffParams, MotionParams, CnmfeParams, EvaluationParams, EventParams,
               FilterParams, SpectrogramParams, ExportParams, EngineParams)


@dataclass(frozen=True)
class PipelineParams:
    """Every stage's parameters for one experiment line (field name = the stage's ``STAGE``, except
    ``events``, ``evaluation`` ...: see :data:`PIPELINE_FIELDS`)."""

    crop: CropParams = field(default_factory=CropParams)
    detrend: DetrendParams = field(default_factory=DetrendParams)
    dff: DffParams = field(default_factory=DffParams)
    motion: MotionParams = field(default_factory=MotionParams)
    cnmfe: CnmfeParams = field(default_factory=CnmfeParams)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)
    events: EventParams = field(default_factory=EventParams)
    filter: FilterParams = field(default_factory=FilterParams)
    spectrogram: SpectrogramParams = field(default_factory=SpectrogramParams)
    export: ExportParams = field(default_factory=ExportParams)
    engine: EngineParams = field(default_factory=EngineParams)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def stages(self) -> dict[str, StageParams]:
        """Field name -> that stage's parameters."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: PipelineParams field -> stage dataclass
PIPELINE_FIELDS = {f.name: f.default_factory for f in dataclasses.fields(PipelineParams)}
