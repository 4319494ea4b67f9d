"""Preprocessing assets: ``cropped_movie`` and ``dff_movie`` (detrend + dF/F), and the
blocking check that the line's parameters fit the cropped recording before anything heavier runs."""
from dagster import AssetCheckResult, AssetExecutionContext, AssetIn, MetadataValue, asset

from ace_neuro.errors import AceError, describe
from ace_neuro.movie import Movie, MovieAlias, MovieStream
from ace_neuro.plots.crop import plot_crop_preview
from ace_neuro.plots.movie import plot_projections
from ace_neuro.stages.crop import CropBox, apply_crop
from ace_neuro.stages.dff import detrend_and_dff
from ace_neuro.params import (CnmfeParams, CropParams, DetrendParams, DffParams, EngineParams, FilterParams,
                              MotionParams, PipelineParams, SpectrogramParams, params_hash)
from ace_neuro.stages.preflight import RecordingShape, check_before_compute
from resources.failures import reports_failures
from resources.figures import FigureStore

from .checks import line_check, movie_finite_check
from .metadata import params_metadata
from .partitions import lines_partitions


def movie_metadata(movie: Movie) -> dict:
    return {"shape": MetadataValue.json(list(movie.frames.shape)), "dtype": str(movie.frames.dtype),
            "frame_rate_hz": round(movie.frame_rate, 4)}


@asset(partitions_def=lines_partitions, io_manager_key="zarr_io", group_name="preprocess", kinds={"zarr"},
       description="The raw movie cropped to crop_coords (bottom-left origin); a pass-through "
                   "reference when no crop is set.")
@reports_failures
def cropped_movie(context: AssetExecutionContext, figures: FigureStore, raw_movie: Movie, crop_parameters: CropParams):
    p = crop_parameters
    stream = apply_crop(raw_movie.frames, p, times=raw_movie.times, frame_rate=raw_movie.frame_rate)
    meta = params_metadata(p, params_hash(p))
    full_mean = raw_movie.extras["mean_projection"][:]
    if stream is None:
        reason = "crop disabled" if not p.enabled else "no crop_coords set (headless): not cropped"
        context.log.warning(f"line {context.partition_key}: {reason}")
        context.add_output_metadata({"cropped": False, "reason": reason, **movie_metadata(raw_movie),
                                     "preview": figures.preview(
                                         context, "preview", plot_crop_preview(full_mean, None, kind="mean")),
                                     **meta})
        return MovieAlias(raw_movie, reason)
    box = stream.attrs["crop_box"]

    def describe(movie: Movie) -> dict:
        return {"cropped": True, "crop_rows": f"{box[0]}..{box[1] - 1}", "crop_cols": f"{box[2]}..{box[3] - 1}",
                **movie_metadata(movie),
                "preview": figures.preview(
                    context, "preview", plot_crop_preview(full_mean, CropBox(*box), kind="mean")),
                **meta}

    stream.describe = describe
    return stream


@asset(partitions_def=lines_partitions, io_manager_key="zarr_io", group_name="preprocess", kinds={"zarr"},
       description="Detrended (median/linear) and dF/F (block-percentile baseline at the real "
                   "frame rate) movie, float32; a pass-through reference when both are disabled.")
@reports_failures
def dff_movie(context: AssetExecutionContext, figures: FigureStore,
              cropped_movie: Movie, detrend_parameters: DetrendParams,
              dff_parameters: DffParams):
    meta = params_metadata({"detrend": detrend_parameters, "dff": dff_parameters},
                           params_hash(detrend_parameters) + params_hash(dff_parameters))
    stream = detrend_and_dff(cropped_movie.frames, detrend_parameters, dff_parameters,
                             frame_rate=cropped_movie.frame_rate, times=cropped_movie.times)
    if stream is None:
        context.add_output_metadata({"passthrough": True, **movie_metadata(cropped_movie), **meta})
        return MovieAlias(cropped_movie, "detrend and dF/F disabled")

    def describe(movie: Movie) -> dict:
        return {"passthrough": False, **movie_metadata(movie),
                "preview": figures.preview(context, "preview", plot_projections(movie.extras["mean_projection"][:],
                                                    movie.extras["max_projection"][:], title="dF/F")),
                **meta}

    stream.describe = describe
    return stream


dff_movie_finite = movie_finite_check(dff_movie, "dff_movie_finite")


@line_check(asset=cropped_movie, blocking=True,
             additional_ins={name: AssetIn() for name in ("motion_parameters", "cnmfe_parameters", "filter_parameters",
                                                          "spectrogram_parameters", "engine_parameters")},
             description="The parameters fit this recording (shifts and patches within the cropped frame, band-pass "
                         "cut-offs below Nyquist, the spectrogram window within the recording, the engine "
                         "installed); when not, nothing heavier than the crop runs and the check says the fix.")
def parameters_fit_the_recording(cropped_movie: Movie, motion_parameters: MotionParams,
                                 cnmfe_parameters: CnmfeParams, filter_parameters: FilterParams,
                                 spectrogram_parameters: SpectrogramParams,
                                 engine_parameters: EngineParams) -> AssetCheckResult:
    t, h, w = (int(s) for s in cropped_movie.frames.shape)
    params = PipelineParams(crop=CropParams(enabled=False), motion=motion_parameters, cnmfe=cnmfe_parameters,
                            filter=filter_parameters, spectrogram=spectrogram_parameters, engine=engine_parameters)
    try:  # the crop box itself was checked by the crop
        check_before_compute(params, RecordingShape(h, w, t, float(cropped_movie.frame_rate)))
    except AceError as exc:
        report = describe(exc)
        return AssetCheckResult(passed=False, description=f"{report.problem} What to do: {report.fix}",
                                metadata=report.as_metadata())
    return AssetCheckResult(passed=True, metadata={"frames": t, "frame": f"{h} x {w} px",
                                                   "frame_rate_hz": round(float(cropped_movie.frame_rate), 4)})
