"""CNMF-E source extraction (SPEC 3.5) and accepted components (SPEC 3.6).

- ``cnmfe_summary_images``: correlation and PNR images of the ``gSig``-filtered movie on a
  subsample, the seed count over a grid of (min_corr, min_pnr), and parameters suggested from
  the data beside the CSV's - for tuning without a GUI (cheap: seconds).
- ``cnmfe_estimates``: the native (or CaImAn) engine's A, C, S, b0, ring background, noise,
  correlation and PNR images, parameters used (zarr group).
- ``component_curation``: the line's manual curation file, as a snapshot whose data version is
  the hash of the decisions.
- ``accepted_components``: one row per component with SNR, r-value, accepted and why, with the
  line's manual curation applied on top.
"""
import numpy as np
import pandas as pd
from dagster import (AssetCheckResult, AssetExecutionContext, AssetIn, DataVersion, MetadataValue, Output, asset)

from ace_neuro.engines import get_engine
from ace_neuro.movie import Movie
from ace_neuro.params import CnmfeParams, EngineParams, EvaluationParams, params_hash
from ace_neuro.plots.cnmfe import plot_contours, plot_summary_images, plot_traces
from ace_neuro.progress import ProgressMeter
from ace_neuro.stages import cnmfe as cnmfe_stage
from ace_neuro.stages.cnmfe import CnmfeResult, advise_parameters, suggest_parameters
from ace_neuro.stages.cnmfe.merge import duplicate_pairs
from ace_neuro.project import curation_file
from ace_neuro.stages.evaluation import accepted_components as evaluate_components
from ace_neuro.stages.evaluation import Curation, curation_version, load_curation
from resources import ProjectResource
from resources.failures import reports_failures
from resources.figures import FigureStore

from .checks import line_check
from .metadata import jsonable, params_metadata
from .motion import HEAVY_POOL
from .partitions import lines_partitions


@asset(partitions_def=lines_partitions, io_manager_key="parquet_io", group_name="cnmfe", kinds={"parquet"},
       description="Tuning view: seed counts over a grid of (min_corr, min_pnr) for the CSV's gSig, with the "
                   "correlation/PNR images and parameters suggested from the data in the metadata.")
@reports_failures
def cnmfe_summary_images(context: AssetExecutionContext, figures: FigureStore, motion_corrected_movie: Movie,
                               cnmfe_parameters: CnmfeParams) -> pd.DataFrame:
    p = cnmfe_parameters
    summary = cnmfe_stage.cnmfe_summary_images(motion_corrected_movie.frames, p.gSig, gSiz=p.gSiz, center_psf=p.center_psf,
                                   border_pix=p.border_pix)
    suggestion = suggest_parameters(summary)
    table = summary.seed_table.copy()
    seeds_now = summary.seeds(min_corr=p.min_corr, min_pnr=p.min_pnr, border_pix=p.border_pix)
    advice = advise_parameters(gSig=p.gSig, min_corr=p.min_corr, min_pnr=p.min_pnr, suggestion=suggestion)
    context.add_output_metadata({
        "parameter_advice": MetadataValue.md("\n".join(f"- {a.message}" for a in advice)
                                             or "CSV values agree with the data"),
        "csv_gSig": MetadataValue.json(list(p.gSig)), "suggested_gSig": MetadataValue.json(list(suggestion.gSig)),
        "csv_gSiz": MetadataValue.json(list(p.gSiz)), "suggested_gSiz": MetadataValue.json(list(suggestion.gSiz)),
        "csv_min_corr": p.min_corr, "suggested_min_corr": float(suggestion.min_corr),
        "csv_min_pnr": p.min_pnr, "suggested_min_pnr": float(suggestion.min_pnr),
        "footprint_sigma_px": float(suggestion.footprint_sigma_px),
        "seeds_at_csv_thresholds": int(len(seeds_now)),
        "how_suggested": MetadataValue.md("\n".join(f"- {n}" for n in suggestion.notes) or "-"),
        "use_suggestion": "set use_suggested_params = TRUE in analysis_parameters.csv (the CSV wins otherwise)",
        "frames_used": int(sum(b - a for a, b in summary.frame_ranges)),
        "preview": figures.preview(context, "preview", plot_summary_images(
            summary.corr, summary.pnr, seeds=seeds_now, min_corr=p.min_corr, min_pnr=p.min_pnr,
            seed_table=summary.seed_table)),
    })
    return table


@asset(partitions_def=lines_partitions, io_manager_key="zarr_io", group_name="cnmfe", kinds={"zarr"},
       pool=HEAVY_POOL,
       description="SPEC 3.5: CNMF-E (Zhou et al. 2018) - footprints A, traces C, spikes S (OASIS), ring "
                   "background, noise, correlation and PNR images, parameters used. Streams the movie.")
@reports_failures
def cnmfe_estimates(context: AssetExecutionContext, figures: FigureStore,
                    motion_corrected_movie: Movie, cnmfe_parameters: CnmfeParams,
                    engine_parameters: EngineParams) -> CnmfeResult:
    p = cnmfe_parameters
    engine = get_engine(engine_parameters.name)
    meter = ProgressMeter("cnmfe_estimates", motion_corrected_movie.n_frames, context.log.info)
    last = {"stage": None}

    def progress(stage: str, fraction: float) -> None:
        if stage != last["stage"]:
            context.log.info(f"CNMF-E: {stage} ({100 * fraction:.0f}%)")
            last["stage"] = stage
        meter.update(fraction, stage)

    result = engine.run_cnmfe(motion_corrected_movie.frames, p, frame_rate=motion_corrected_movie.frame_rate,
                              progress=progress)
    advice = list(dict(result.params).get("parameter_advice", []))
    for message in advice:
        context.log.warning(message)
    context.add_output_metadata({
        "parameter_advice": MetadataValue.md("\n".join(f"- {m}" for m in advice) or "CSV values agree with the data"),
        **params_metadata(p, params_hash(p)), "engine": f"{engine.name} {engine.version}",
        "components": int(result.n_components), "frames": int(result.n_frames),
        "dims": MetadataValue.json(list(result.dims)), "seeds_examined": int(len(result.seeds)),
        "parameters_used": MetadataValue.json(jsonable(result.params)),
        "finite": bool(np.isfinite(result.C).all() and np.isfinite(result.A.data).all()),
        "preview": figures.preview(context, "preview", plot_summary_images(
            result.corr, result.pnr, seeds=result.seeds, min_corr=p.min_corr, min_pnr=p.min_pnr)),
        "contours": figures.preview(context, "contours", plot_contours(result)),
    })
    return result


@asset(partitions_def=lines_partitions, io_manager_key="json_io", group_name="cnmfe", kinds={"json"},
       description="The line's manual curation (<project>/curation/<line>.json, written by the review window): "
                   "components rejected or restored by a person. Data version = hash of the decisions, so "
                   "editing the file and refreshing this snapshot (the parameters_changed sensor does it) marks "
                   "accepted_components and everything downstream stale.")
@reports_failures
def component_curation(context: AssetExecutionContext, project: ProjectResource) -> Output:
    path = curation_file(project.project_path, int(context.partition_key))
    curation = load_curation(path)
    return Output(curation, data_version=DataVersion(curation_version(curation)),
                  metadata={"curation_file": MetadataValue.path(str(path)), "exists": path.exists(),
                            "rejected": MetadataValue.json(list(curation.rejected)),
                            "restored": MetadataValue.json(list(curation.restored)), "updated": curation.updated})


@asset(partitions_def=lines_partitions, io_manager_key="parquet_io", group_name="cnmfe", kinds={"parquet"},
       description="SPEC 3.6: one row per component - id, centroid, area, SNR, spatial r-value, accepted and "
                   "why - applying min_SNR and rval_thr, then the line's manual curation on top.")
@reports_failures
def accepted_components(context: AssetExecutionContext, figures: FigureStore, cnmfe_estimates: CnmfeResult,
                        motion_corrected_movie: Movie, evaluation_parameters: EvaluationParams,
                        component_curation: Curation) -> pd.DataFrame:
    ep = evaluation_parameters
    curation = component_curation
    table = evaluate_components(motion_corrected_movie.frames, cnmfe_estimates, ep, curation=curation)
    n_acc = int(table["accepted"].sum())
    context.add_output_metadata({
        **params_metadata(ep, params_hash(ep)), "n_components": len(table), "n_accepted": n_acc,
        "n_rejected": len(table) - n_acc,
        "manually_rejected": len(curation.rejected), "manually_restored": len(curation.restored),
        "preview": figures.preview(context, "preview", plot_contours(cnmfe_estimates, table)),
        "traces": figures.preview(context, "traces", plot_traces(cnmfe_estimates, table)),
    })
    return table



@line_check(asset=accepted_components, description="At least one component is accepted.")
def at_least_one_accepted(accepted_components: pd.DataFrame) -> AssetCheckResult:
    n = int(accepted_components["accepted"].sum()) if len(accepted_components) else 0
    return AssetCheckResult(passed=n > 0, metadata={"n_accepted": n})


@line_check(asset=cnmfe_estimates, description="No NaN or inf in A, C, S.", blocking=True)
def estimates_finite(cnmfe_estimates: CnmfeResult) -> AssetCheckResult:
    r = cnmfe_estimates
    ok = {name: bool(np.isfinite(v).all()) for name, v in (("A", r.A.data), ("C", r.C), ("S", r.S))}
    return AssetCheckResult(passed=all(ok.values()), metadata=ok)


@line_check(asset=accepted_components, additional_ins={"cnmfe_estimates": AssetIn(),
                                                        "cnmfe_parameters": AssetIn()},
             description="No two accepted components are one neuron found twice (the footprints are nearly the "
                         "same image, or one lies inside the other with close centroids: CNMF-E's own test).")
def no_duplicate_accepted(accepted_components: pd.DataFrame, cnmfe_estimates: CnmfeResult,
                          cnmfe_parameters: CnmfeParams) -> AssetCheckResult:
    ids = accepted_components.loc[accepted_components["accepted"], "component_id"].to_numpy(dtype=int)
    pairs = duplicate_pairs(cnmfe_estimates.A[:, ids], cnmfe_estimates.dims, gSig=cnmfe_parameters.gSig)
    named = [[int(ids[i]), int(ids[j])] for i, j in pairs]
    return AssetCheckResult(passed=not named, metadata={"duplicate_pairs": MetadataValue.json(named[:20]),
                                                        "n_pairs": len(named)})
