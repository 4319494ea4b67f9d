"""``motion_corrected_movie``: NoRMCorre-style correction, shifts and template stored beside it."""
import numpy as np
from dagster import (AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, AssetIn, MetadataValue, asset)

from ace_neuro.engines import get_engine
from ace_neuro.movie import Movie, MovieAlias
from ace_neuro.plots.motion import plot_before_after, plot_shifts
from ace_neuro.stages.motion import motion_result_from_arrays
from ace_neuro.params import EngineParams, MotionParams, params_hash
from resources.failures import reports_failures
from resources.figures import FigureStore

from .checks import line_check, movie_finite_check
from .metadata import advice_markdown, params_metadata, rounded
from .partitions import lines_partitions

HEAVY_POOL = "heavy"


def _result(movie: Movie, params):
    return motion_result_from_arrays({k: np.asarray(v[:]) for k, v in movie.extras.items()}, params)


@asset(partitions_def=lines_partitions, io_manager_key="zarr_io", group_name="motion", kinds={"zarr"},
       pool=HEAVY_POOL,
       description="Rigid or piecewise-rigid motion correction (shifts estimated on the gSig_filt "
                   "high-pass copy, applied to the unfiltered movie), float32; shifts, template and quality "
                   "figures stored beside it. A pass-through reference when apply_motion_correction is FALSE.")
@reports_failures
def motion_corrected_movie(context: AssetExecutionContext, figures: FigureStore,
                           dff_movie: Movie, motion_parameters: MotionParams,
                           engine_parameters: EngineParams):
    mp = motion_parameters
    meta = params_metadata(mp, params_hash(mp))
    if not mp.enabled:
        context.add_output_metadata({"corrected": False, "shape": MetadataValue.json(list(dff_movie.frames.shape)),
                                     **meta})
        return MovieAlias(dff_movie, "apply_motion_correction is FALSE")
    engine = get_engine(engine_parameters.name)
    stream = engine.correct_motion(dff_movie.frames, mp, times=dff_movie.times, frame_rate=dff_movie.frame_rate)
    stream.attrs.update({"engine": engine.name, "engine_version": engine.version})
    notes, advice = list(stream.attrs.get("notes", [])), list(stream.attrs.get("parameter_advice", []))
    for note in notes:
        context.log.info(note)
    for message in advice:
        context.log.warning(message)
    gsf_used = stream.attrs["motion_params"]["gSig_filt"]

    def describe(movie: Movie) -> dict:
        r = _result(movie, mp)
        shifts = r.rigid_shifts
        return {
            "mode": "piecewise-rigid" if r.patch_shifts is not None else "rigid",
            "max_abs_shift_px": rounded(np.abs(shifts).max()) if len(shifts) else 0.0,
            "corr_with_template_before": rounded(np.nanmean(r.corr_before)),
            "corr_with_template_after": rounded(np.nanmean(r.corr_after)),
            "residual_shift_px_median": rounded(np.nanmedian(r.residual_shift)),
            "gSig_filt_csv_vs_used": f"{_pair(mp.gSig_filt)} -> {_pair(gsf_used)}",
            "parameter_advice": advice_markdown(advice + notes),
            "corrected": True, "engine": f"{engine.name} {engine.version}",
            "engine_interpreter": engine.interpreter,
            "shape": MetadataValue.json(list(movie.frames.shape)), "frame_rate_hz": round(movie.frame_rate, 4),
            "preview": figures.preview(context, "preview", plot_shifts(r, movie.times)),
            "before_after": figures.preview(context, "before_after", plot_before_after(r.mean_before, r.mean_after)),
            **meta,
        }

    stream.describe = describe
    return stream


def _pair(v) -> str:
    return "off" if v is None else " x ".join(str(int(x)) for x in v)


def _corrected(movie: Movie, mp: MotionParams):
    if not mp.enabled or "rigid_shifts" not in movie.extras:
        return None
    return _result(movie, mp)


@line_check(asset=motion_corrected_movie, additional_ins={"motion_parameters": AssetIn()},
             description="Shifts stay within max_shifts (and max_deviation_rigid "
                                                       "for patches).", blocking=True)
def shifts_within_bounds(motion_corrected_movie: Movie, motion_parameters: MotionParams) -> AssetCheckResult:
    mp = motion_parameters
    r = _corrected(motion_corrected_movie, mp)
    if r is None:
        return AssetCheckResult(passed=True, metadata={"skipped": "motion correction disabled"})
    max_abs = np.abs(r.rigid_shifts).max(axis=0)
    tol = 1.0 if motion_corrected_movie.attrs.get("engine") == "caiman" else 1e-3  # CaImAn's sub-pixel step may pass its bound
    ok = bool(max_abs[0] <= mp.max_shifts[0] + tol and max_abs[1] <= mp.max_shifts[1] + tol)
    meta = {"max_abs_dy": rounded(max_abs[0]), "max_abs_dx": rounded(max_abs[1]),
            "max_shifts": MetadataValue.json(list(mp.max_shifts))}
    if r.patch_shifts is not None:
        dev = np.abs(r.patch_shifts - r.rigid_shifts[:, None, None, :]).max()
        meta["max_patch_deviation_px"] = rounded(dev)
        ok = ok and bool(dev <= mp.max_deviation_rigid + tol)
    return AssetCheckResult(passed=ok, metadata=meta)


@line_check(asset=motion_corrected_movie, additional_ins={"motion_parameters": AssetIn()},
             description="Frames correlate better with the template after "
                                                       "correction than before.")
def template_correlation_improved(motion_corrected_movie: Movie,
                                  motion_parameters: MotionParams) -> AssetCheckResult:
    r = _corrected(motion_corrected_movie, motion_parameters)
    if r is None:
        return AssetCheckResult(passed=True, metadata={"skipped": "motion correction disabled"})
    before, after = float(np.nanmean(r.corr_before)), float(np.nanmean(r.corr_after))
    return AssetCheckResult(passed=after >= before - 1e-4, severity=AssetCheckSeverity.WARN,
                            metadata={"corr_before": rounded(before), "corr_after": rounded(after)})


motion_corrected_finite = movie_finite_check(motion_corrected_movie, "motion_corrected_finite")
