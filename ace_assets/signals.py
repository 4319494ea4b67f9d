"""Table assets from traces: ``calcium_phase``, ``calcium_events``, ``spectrograms``."""
import numpy as np
import pandas as pd
from dagster import (AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, AssetIn, MetadataValue, asset)

from ace_neuro.movie import Movie
from ace_neuro.plots.signals import (plot_event_phase_histogram, plot_event_raster, plot_filtered_phase,
                                     plot_spectrogram)
from ace_neuro.stages.cnmfe import CnmfeResult
from ace_neuro.stages.events import attach_phase, detect_events, event_rates_per_minute
from ace_neuro.stages.phase import compute_phase, mean_fluorescence, phase_table
from ace_neuro.stages.spectrogram import multitaper_spectrogram, spectrogram_table
from ace_neuro.params import EventParams, FilterParams, SpectrogramParams, params_hash
from resources.failures import reports_failures
from resources.figures import FigureStore

from .checks import line_check
from .metadata import params_metadata, quartiles, rounded
from .partitions import lines_partitions


def accepted_ids(components: pd.DataFrame) -> np.ndarray:
    return components.loc[components["accepted"], "component_id"].to_numpy(dtype=np.int64)


@asset(partitions_def=lines_partitions, io_manager_key="parquet_io", group_name="signals", kinds={"parquet"},
       description="Per frame, the cropped field's mean fluorescence, band-passed (zero-phase) and its "
                   "Hilbert phase in (-pi, pi]; the same phase per accepted component (phase_rad_<id>).")
@reports_failures
def calcium_phase(context: AssetExecutionContext, figures: FigureStore,
                  cropped_movie: Movie, cnmfe_estimates: CnmfeResult,
                  accepted_components: pd.DataFrame, filter_parameters: FilterParams) -> pd.DataFrame:
    fp = filter_parameters
    meta = params_metadata(fp, params_hash(fp))
    trace = mean_fluorescence(cropped_movie.frames)
    fs = cropped_movie.frame_rate
    if not fp.phase_enabled:
        context.add_output_metadata({"disabled": "compute_miniscope_phase is FALSE", **meta})
        return pd.DataFrame({"frame": np.arange(len(trace)), "time_s": cropped_movie.times,
                             "mean_fluorescence": trace})
    mean_field = compute_phase(trace, fs, fp)
    ids = accepted_ids(accepted_components)
    comps = compute_phase(cnmfe_estimates.C[ids], fs, fp) if len(ids) else None
    table = phase_table(cropped_movie.times, mean_field, components=comps, component_ids=ids)
    table.insert(2, "mean_fluorescence", trace)
    context.add_output_metadata({
        "frames": len(table), "components": len(ids), "sampling_rate_hz": round(fs, 4),
        "filter": fp.ftype if fp.filter_enabled else "none (unfiltered phase)",
        "phases_finite": bool(np.isfinite(table["phase_rad"]).all()),
        "preview": figures.preview(
            context, "preview", plot_filtered_phase(cropped_movie.times, trace - trace.mean(), mean_field)),
        **meta,
    })
    return table


@asset(partitions_def=lines_partitions, io_manager_key="parquet_io", group_name="signals", kinds={"parquet"},
       description="One row per calcium event of each accepted component: frame in the movie, time (s) "
                   "from the timestamps, amplitude, prominence, method and threshold, phase at the event.")
@reports_failures
def calcium_events(context: AssetExecutionContext, figures: FigureStore, cnmfe_estimates: CnmfeResult,
                   accepted_components: pd.DataFrame, calcium_phase: pd.DataFrame,
                   event_parameters: EventParams) -> pd.DataFrame:
    ep = event_parameters
    meta = params_metadata(ep, params_hash(ep))
    ids = accepted_ids(accepted_components)
    times = calcium_phase["time_s"].to_numpy()
    est = cnmfe_estimates
    events = detect_events(est.C[ids], times, ep, component_ids=ids, spikes=est.S[ids], noise=est.sn[ids])
    if "phase_rad" in calcium_phase:
        events = attach_phase(events, calcium_phase["phase_rad"].to_numpy())
    events.insert(0, "line", int(context.partition_key))
    rates = event_rates_per_minute(events, ids, times)
    figs = {}
    if len(ids):
        figs["preview"] = figures.preview(
            context, "preview", plot_event_raster(est.C[ids], events, times=times, component_ids=ids))
    if len(events) and "phase_rad" in events:  # no phases when compute_miniscope_phase is FALSE
        figs["phase_histogram"] = figures.preview(context, "phase_histogram", plot_event_phase_histogram(events))
    context.add_output_metadata({
        "n_events": len(events), "components": len(ids),
        "events_per_min_quartiles": quartiles(rates),
        "events_per_min_max": rounded(rates.max()) if len(rates) else 0.0, "method": ep.method, **figs, **meta,
    })
    return events


@asset(partitions_def=lines_partitions, io_manager_key="parquet_io", group_name="signals", kinds={"parquet"},
       description="Multitaper spectrogram (DPSS, NW=time_bandwidth, 2NW-1 tapers) of the mean "
                   "fluorescence, long form: window centre time, frequency, power, power in dB.")
@reports_failures
def spectrograms(context: AssetExecutionContext, figures: FigureStore,
                 calcium_phase: pd.DataFrame, cropped_movie: Movie,
                 spectrogram_parameters: SpectrogramParams) -> pd.DataFrame:
    sp = spectrogram_parameters
    meta = params_metadata(sp, params_hash(sp))
    trace = calcium_phase["mean_fluorescence"].to_numpy()
    if not sp.enabled:
        context.add_output_metadata({"disabled": "compute_miniscope_spectrogram is FALSE", **meta})
        return pd.DataFrame({c: pd.Series(dtype=float) for c in ("time_s", "frequency_hz", "power", "power_db")})
    spec = multitaper_spectrogram(trace, cropped_movie.frame_rate, sp, times=calcium_phase["time_s"].to_numpy())
    table = spectrogram_table(spec)
    context.add_output_metadata({
        "windows": int(spec.power.shape[0]), "frequencies": int(spec.power.shape[1]),
        "freq_lims_used_hz": MetadataValue.json([float(f) for f in spec.freq_lims_used]),
        "tapers": int(spec.n_tapers), "sampling_rate_hz": round(spec.fs, 4),
        **({"preview": figures.preview(context, "preview", plot_spectrogram(spec))} if spec.power.size else {}),
        **meta,
    })
    return table


# ------------------------------------------------------------------------------------------- checks
#: plausible calcium event rates per accepted component (events per minute): cortical/hippocampal
#: neurons imaged with GCaMP fire a few transients per minute; hundreds per minute is noise.
EVENT_RATE_RANGE_PER_MIN = (0.05, 120.0)


@line_check(asset=calcium_events, additional_ins={"accepted_components": AssetIn(), "calcium_phase": AssetIn()},
             description="Event rate of each accepted component lies within "
             f"{EVENT_RATE_RANGE_PER_MIN[0]}-{EVENT_RATE_RANGE_PER_MIN[1]} events/min (else the threshold is "
             "likely wrong).")
def event_rate_plausible(calcium_events: pd.DataFrame, accepted_components: pd.DataFrame,
                         calcium_phase: pd.DataFrame) -> AssetCheckResult:
    ids = accepted_ids(accepted_components)
    rates = event_rates_per_minute(calcium_events, ids, calcium_phase["time_s"].to_numpy())
    if rates.empty:
        return AssetCheckResult(passed=True, metadata={"skipped": "no accepted components"})
    lo, hi = EVENT_RATE_RANGE_PER_MIN
    outside = rates[(rates < lo) | (rates > hi)]
    return AssetCheckResult(
        passed=len(outside) == 0, severity=AssetCheckSeverity.WARN,
        metadata={"components": len(ids), "outside_range": len(outside),
                  "outside_ids": MetadataValue.json([int(i) for i in outside.index[:50]]),
                  "rate_median_per_min": rounded(rates.median()), "rate_max_per_min": rounded(rates.max())})


@line_check(asset=calcium_phase, description="Every phase value is finite and within (-pi, pi].", blocking=True)
def phases_finite(calcium_phase: pd.DataFrame) -> AssetCheckResult:
    cols = [c for c in calcium_phase.columns if c.startswith("phase_rad")]
    values = calcium_phase[cols].to_numpy() if cols else np.zeros((0, 0))
    finite = bool(np.isfinite(values).all())
    in_range = bool(((values > -np.pi - 1e-9) & (values <= np.pi + 1e-9)).all()) if values.size else True
    return AssetCheckResult(passed=finite and in_range, metadata={"phase_columns": len(cols), "finite": finite,
                                                                  "within_pi": in_range})


@line_check(asset=spectrograms, additional_ins={"cropped_movie": AssetIn(), "spectrogram_parameters": AssetIn()},
             description="Frequencies lie within freq_lims (upper limit capped at Nyquist) "
             "and power is finite and non-negative.")
def spectrogram_frequencies_within_limits(spectrograms: pd.DataFrame, cropped_movie: Movie,
                                          spectrogram_parameters: SpectrogramParams) -> AssetCheckResult:
    if spectrograms.empty:
        return AssetCheckResult(passed=True, metadata={"skipped": "spectrogram disabled or recording too short"})
    lo, hi = spectrogram_parameters.freq_lims
    nyquist = cropped_movie.frame_rate / 2
    f = spectrograms["frequency_hz"].to_numpy()
    p = spectrograms["power"].to_numpy()
    ok_f = bool(f.min() >= lo - 1e-9 and f.max() <= min(hi, nyquist) + 1e-9)
    ok_p = bool(np.isfinite(p).all() and (p >= 0).all())
    return AssetCheckResult(passed=ok_f and ok_p, metadata={"f_min_hz": float(f.min()), "f_max_hz": float(f.max()),
                                                            "nyquist_hz": nyquist, "power_ok": ok_p})
