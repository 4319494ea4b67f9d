"""CNMF-E source extraction and accepted components.

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
import dataclasses

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
from .metadata import advice_markdown, params_metadata, quartiles, rounded
from .motion import HEAVY_POOL
from .partitions import lines_partitions


def suggestion_table(p: CnmfeParams, suggestion) -> str:
    """The CSV's seeding parameters beside the values measured on the recording."""
    rows = [("gSig", p.gSig, suggestion.gSig), ("gSiz", p.gSiz, suggestion.gSiz),
            ("min_corr", p.min_corr, suggestion.min_corr), ("min_pnr", p.min_pnr, suggestion.min_pnr)]
    return "\n".join(["| parameter | CSV | suggested |", "|---|---|---|",
                      *(f"| {n} | {_show(a)} | {_show(b)} |" for n, a, b in rows)])


def changed_table(p: CnmfeParams, used: dict) -> str:
    """The parameters the run used that differ from the CSV's (the suggestion, when it was switched on)."""
    rows = [(name, getattr(p, name), used.get(name)) for name in ("gSig", "gSiz", "min_corr", "min_pnr")
            if _show(getattr(p, name)) != _show(used.get(name))]
    if not rows:
        return "none: the CSV's values were used"
    return "\n".join(["| parameter | CSV | used |", "|---|---|---|",
                      *(f"| {n} | {_show(a)} | {_show(b)} |" for n, a, b in rows)])


def seeds_note(used: dict, result: CnmfeResult) -> str:
    counts = used.get("seed_counts") or {}
    if not counts:
        return "seed pixels examined by the initialisation"
    return (f"{counts['initial']} initial seeds on all {result.n_frames} frames (down-sampled by ssub "
            f"{used.get('ssub')}, tsub {used.get('tsub')}) + {counts['residual']} from the residual search; "
            "cnmfe_summary_images counts on a sample, so its number differs")


def rejection_summary(table: pd.DataFrame) -> str:
    """How many components were rejected for each reason."""
    rejected = table.loc[~table["accepted"], "reason"]
    if rejected.empty:
        return "none rejected"
    return "\n".join(f"- {kind}: {n}" for kind, n in rejected.map(_reason_kind).value_counts().items())


_REASON_KINDS = (("manual", "rejected by hand"), ("snr", "SNR below min_SNR"),
                 ("r_value", "r-value below rval_thr"), ("no active", "no active frames for an r-value"))


def _reason_kind(reason: str) -> str:
    found = [label for prefix, label in _REASON_KINDS
             if any(part.startswith(prefix) for part in str(reason).split("; "))]
    return " and ".join(found[:1] if found[:1] == ["rejected by hand"] else found) or str(reason)


def _show(v) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(_show(x) for x in v)
    if isinstance(v, float):
        return f"{rounded(v):g}"
    return str(v)


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
    frames_used = int(sum(b - a for a, b in summary.frame_ranges))
    context.add_output_metadata({
        "seeds_at_csv_thresholds": int(len(seeds_now)),
        "seed_count_note": f"on a {frames_used}-frame sample at full resolution, for tuning; cnmfe_estimates "
                           "seeds again on every frame (its seeds_examined)",
        "csv_vs_suggested": MetadataValue.md(suggestion_table(p, suggestion)),
        "parameter_advice": advice_markdown(a.message for a in advice),
        "use_suggestion": "set use_suggested_params = TRUE in analysis_parameters.csv (the CSV wins otherwise)",
        "how_suggested": MetadataValue.md("\n".join(f"- {n}" for n in suggestion.notes) or "-"),
        "footprint_sigma_px": rounded(suggestion.footprint_sigma_px),
        "frames_used": frames_used,
        "preview": figures.preview(context, "preview", plot_summary_images(
            summary.corr, summary.pnr, seeds=seeds_now, min_corr=p.min_corr, min_pnr=p.min_pnr,
            seed_table=summary.seed_table)),
        **params_metadata(p, params_hash(p)),
    })
    return table


@asset(partitions_def=lines_partitions, io_manager_key="zarr_io", group_name="cnmfe", kinds={"zarr"},
       pool=HEAVY_POOL,
       description="CNMF-E (Zhou et al. 2018) - footprints A, traces C, spikes S (OASIS), ring "
                   "background, noise, correlation and PNR images, parameters used. Streams the movie.")
@reports_failures
def cnmfe_estimates(context: AssetExecutionContext, figures: FigureStore,
                    motion_corrected_movie: Movie, cnmfe_parameters: CnmfeParams,
                    engine_parameters: EngineParams) -> CnmfeResult:
    p = cnmfe_parameters
    if not p.enabled:
        return _switched_off(context, motion_corrected_movie, p)
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
    used = dict(result.params)
    advice = list(used.get("parameter_advice", []))
    for message in advice:
        context.log.warning(message)
    context.add_output_metadata({
        "components": int(result.n_components), "frames": int(result.n_frames),
        "dims": MetadataValue.json(list(result.dims)), "engine": f"{engine.name} {engine.version}",
        "engine_interpreter": engine.interpreter,
        "seeds_examined": int(len(result.seeds)), "seeds_note": seeds_note(used, result),
        "parameter_advice": advice_markdown(advice),
        "changed_by_suggestion": MetadataValue.md(changed_table(p, used)),
        "finite": bool(np.isfinite(result.C).all() and np.isfinite(result.A.data).all()),
        "preview": figures.preview(context, "preview", plot_contours(result)),
        **params_metadata(p, params_hash(p)),
    })
    return result


def _switched_off(context: AssetExecutionContext, movie: Movie, p: CnmfeParams) -> CnmfeResult:
    """run_CNMFE = FALSE: no source extraction; the components, events and per-component phases are empty."""
    why = "run_CNMFE is FALSE: CNMF-E did not run, so the line has no components (and no events)"
    context.log.info(why)
    result = CnmfeResult.no_components(tuple(movie.frames.shape[1:]), movie.n_frames, movie.frame_rate,
                                       {**dataclasses.asdict(p), "notes": [why]})
    context.add_output_metadata({"components": 0, "frames": int(movie.n_frames), "skipped": why,
                                 **params_metadata(p, params_hash(p))})
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
                  metadata={"curation_file": _curation_file_metadata(path),
                            "rejected": MetadataValue.json(list(curation.rejected)),
                            "restored": MetadataValue.json(list(curation.restored)), "updated": curation.updated})


def _curation_file_metadata(path) -> MetadataValue:
    if path.exists():
        return MetadataValue.path(str(path))
    return MetadataValue.text(f"none yet: {path} is written when someone saves decisions in the review window, "
                              "which opens after CNMF-E in a run of `python -m ace_neuro.pipelines.miniscope` "
                              "without --headless or --no-review (or write it by hand)")


@asset(partitions_def=lines_partitions, io_manager_key="parquet_io", group_name="cnmfe", kinds={"parquet"},
       description="One row per component - id, centroid, area, SNR, spatial r-value, accepted and "
                   "why - applying min_SNR and rval_thr, then the line's manual curation on top.")
@reports_failures
def accepted_components(context: AssetExecutionContext, figures: FigureStore, cnmfe_estimates: CnmfeResult,
                        motion_corrected_movie: Movie, evaluation_parameters: EvaluationParams,
                        component_curation: Curation) -> pd.DataFrame:
    ep = evaluation_parameters
    curation = component_curation
    table = evaluate_components(motion_corrected_movie.frames, cnmfe_estimates, ep, curation=curation)
    n_acc = int(table["accepted"].sum())
    acc = table[table["accepted"]]
    context.add_output_metadata({
        "n_accepted": n_acc, "n_rejected": len(table) - n_acc, "n_components": len(table),
        "snr_quartiles_accepted": quartiles(acc["snr"]), "r_value_quartiles_accepted": quartiles(acc["r_value"]),
        "rejected_because": MetadataValue.md(rejection_summary(table)),
        "manually_rejected": len(curation.rejected), "manually_restored": len(curation.restored),
        "preview": figures.preview(context, "preview", plot_contours(cnmfe_estimates, table)),
        "traces": figures.preview(context, "traces", plot_traces(cnmfe_estimates, table)),
        **params_metadata(ep, params_hash(ep)),
    })
    return table



@line_check(asset=accepted_components, additional_ins={"cnmfe_parameters": AssetIn()},
            description="At least one component is accepted (unless run_CNMFE is FALSE).")
def at_least_one_accepted(accepted_components: pd.DataFrame, cnmfe_parameters: CnmfeParams) -> AssetCheckResult:
    if not cnmfe_parameters.enabled:
        return AssetCheckResult(passed=True, metadata={"skipped": "run_CNMFE is FALSE"})
    n = int(accepted_components["accepted"].sum()) if len(accepted_components) else 0
    why = None if n else (f"none of the {len(accepted_components)} components passed min_SNR and rval_thr: see "
                          "rejected_because on accepted_components, then lower the thresholds or check the "
                          "CNMF-E parameters (cnmfe_summary_images)")
    return AssetCheckResult(passed=n > 0, description=why, metadata={"n_accepted": n})


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
