"""Figures for the table stages: event raster, phase of events, spectrogram, filtered trace (headless)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ace_neuro.plots.common import new_figure
from ace_neuro.stages.phase import PhaseResult
from ace_neuro.stages.spectrogram import Spectrogram


def plot_event_raster(traces: np.ndarray, events: pd.DataFrame, *, times: np.ndarray,
                      component_ids: Sequence[int] | None = None, max_components: int = 30,
                      title: str = "Calcium traces and events") -> Figure:
    """Stacked traces (each scaled to its own range) with their events marked.

    Parameters
    ----------
    traces : ndarray, shape (K, T)
    events : DataFrame
        From :func:`ace_neuro.stages.events.detect_events` (``component_id``, ``frame``).
    times : ndarray, shape (T,)
        Frame times, seconds.
    component_ids : sequence of int, optional
        Id of each trace row (default ``0..K-1``).
    max_components : int
        Only the first this many traces are drawn (the title says so).
    """
    x = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    t = np.asarray(times, dtype=np.float64)
    if x.shape[-1] != t.size:
        raise ValueError(f"traces have {x.shape[-1]} frames but times has {t.size}")
    ids = list(range(x.shape[0])) if component_ids is None else [int(c) for c in component_ids]
    n = min(x.shape[0], max_components)
    fig = new_figure(8.0, 1.0 + 0.35 * max(n, 1))
    ax = fig.add_subplot()
    by_comp = {c: g["frame"].to_numpy() for c, g in events.groupby("component_id")} if len(events) else {}
    for row in range(n):
        y = x[row]
        span = np.ptp(y) or 1.0
        offset = n - 1 - row
        ax.plot(t, (y - y.min()) / span * 0.85 + offset, lw=0.6, color="0.25")
        frames = by_comp.get(ids[row], np.empty(0, dtype=int))
        if frames.size:
            ax.plot(t[frames], np.full(frames.size, offset + 0.9), "|", color="tab:red", ms=5, mew=1.0)
    ax.set_yticks(np.arange(n))
    ax.set_yticklabels([str(c) for c in ids[:n]][::-1], fontsize=6)
    ax.set_ylim(-0.2, max(n, 1) + 0.1)
    ax.set_xlim(t[0] if t.size else 0, t[-1] if t.size else 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("component")
    shown = f" (first {n} of {x.shape[0]})" if n < x.shape[0] else ""
    ax.set_title(f"{title}{shown}: {len(events)} events")
    return fig


def plot_event_phase_histogram(events: pd.DataFrame, *, column: str = "phase_rad", n_bins: int = 18,
                               title: str = "Phase of calcium events") -> Figure:
    """Polar histogram of the phase (radians) at which events occurred, with the mean resultant vector."""
    if column not in events:
        raise ValueError(f"events have no {column!r} column; add it with ace_neuro.stages.events.attach_phase")
    phase = events[column].to_numpy(dtype=np.float64)
    fig = new_figure(4.5, 4.5)
    ax = fig.add_subplot(projection="polar")
    edges = np.linspace(-np.pi, np.pi, n_bins + 1)
    counts, _ = np.histogram(phase, bins=edges)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue", alpha=0.7, edgecolor="white")
    if phase.size:
        vector = np.mean(np.exp(1j * phase))
        ax.annotate("", xy=(np.angle(vector), np.abs(vector) * max(counts.max(), 1)), xytext=(0, 0),
                    arrowprops=dict(arrowstyle="->", color="tab:red", lw=1.5))
        title = f"{title}\n{phase.size} events, R = {np.abs(vector):.2f}, mean {np.angle(vector):.2f} rad"
    ax.set_title(title, fontsize=9)
    return fig


def plot_spectrogram(spec: Spectrogram, *, title: str = "Multitaper spectrogram of mean fluorescence",
                     time_unit: str = "min") -> Figure:
    """Spectrogram image, power in dB, time in minutes (or seconds)."""
    scale = {"min": 60.0, "s": 1.0}.get(time_unit)
    if scale is None:
        raise ValueError(f"time_unit must be 'min' or 's', got {time_unit!r}")
    fig = new_figure(8.0, 3.5)
    ax = fig.add_subplot()
    db = spec.power_db
    lo, hi = np.percentile(db, [5, 99.5]) if db.size else (0.0, 1.0)
    mesh = ax.pcolormesh(spec.times / scale, spec.freqs, db.T, shading="nearest", cmap="magma", vmin=lo, vmax=hi)
    fig.colorbar(mesh, ax=ax, label="power (dB)")
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(f"{title}\n{spec.window_samples / spec.fs:g} s windows, step {spec.step_samples / spec.fs:g} s, "
                 f"NW = {spec.params.time_bandwidth:g}, {spec.n_tapers} tapers, fs = {spec.fs:g} Hz", fontsize=9)
    return fig


def plot_filtered_phase(times: np.ndarray, trace: np.ndarray, result: PhaseResult, *,
                        title: str = "Mean fluorescence, band-passed, and its phase") -> Figure:
    """Raw (mean-removed) trace with the filtered trace and envelope, and the Hilbert phase below."""
    t = np.asarray(times, dtype=np.float64)
    raw = np.asarray(trace, dtype=np.float64)
    if raw.ndim != 1 or raw.shape != t.shape or result.phase.shape != t.shape:
        raise ValueError("times, trace and the phase result must all be one trace of the same length")
    fig = new_figure(8.0, 4.5)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(t, raw - raw.mean(), lw=0.5, color="0.6", label="trace (mean removed)")
    top.plot(t, result.filtered, lw=0.9, color="tab:blue", label="filtered")
    top.plot(t, result.amplitude, lw=0.7, color="tab:orange", label="envelope")
    top.legend(fontsize=7, loc="upper right")
    top.set_ylabel("fluorescence")
    d = result.design
    band = "unfiltered" if d is None else f"{d.ftype} {d.btype} {', '.join(f'{e:g}' for e in d.edges_hz)} Hz"
    top.set_title(f"{title} ({band})", fontsize=9)
    bottom.plot(t, result.phase, lw=0.5, color="tab:purple")
    bottom.set_ylim(-np.pi, np.pi)
    bottom.set_yticks([-np.pi, 0, np.pi])
    bottom.set_yticklabels(["-π", "0", "π"])
    bottom.set_ylabel("phase (rad)")
    bottom.set_xlabel("time (s)")
    return fig


def plot_mean_trace(times: np.ndarray, before: np.ndarray, after: np.ndarray | None = None, *,
                    title: str = "Mean fluorescence before and after detrending") -> Figure:
    """Whole-field mean trace before (and after) detrending: the trend that was removed."""
    t = np.asarray(times, dtype=np.float64)
    fig = new_figure(8.0, 3.0)
    ax = fig.add_subplot()
    ax.plot(t, before, lw=0.7, label="before")
    if after is not None:
        ax.plot(t, after, lw=0.7, label="after")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mean fluorescence")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return fig


__all__ = ["plot_event_raster", "plot_event_phase_histogram", "plot_spectrogram", "plot_filtered_phase",
           "plot_mean_trace"]
