"""Calcium events: one row per event, with frame, time, amplitude and threshold.

Three methods, chosen by :attr:`~ace_neuro.params.EventParams.method`:

``'noise'`` (recommended, the default)
    Onsets of calcium transients, thresholded in units of the trace's own noise.

    * Noise: ``sigma = 1.4826 * MAD(diff(x)) / sqrt(2)``, the robust standard
      deviation of white noise on the trace ``x`` (the first difference removes
      slow baseline changes; transients are sparse, so the median absolute
      deviation ignores them; for a trace that is already denoised, such as
      CNMF-E's ``C``, pass the component noise, e.g. CNMF-E's ``sn``, as
      ``noise=``, since the denoised trace has next to none).
    * Onset score: ``score[i] = mean(x[i:i+m]) - mean(x[i-m:i])``, a first
      derivative smoothed over ``m = round(onset_window_s * fs)`` frames
      (5 frames at 30 fps). It peaks at the first frame of a rise; for white
      noise its standard deviation is ``sigma * sqrt(2 / m)``.
    * An event is a local maximum of the score above
      ``noise_threshold * sigma * sqrt(2 / m)`` (that is, ``noise_threshold``
      standard deviations of the score), at least ``m`` frames from the
      previous one (``scipy.signal.find_peaks`` with ``distance=m``).
      ``threshold`` is ``noise_threshold`` (score noise units) and
      ``threshold_abs`` the same in trace units. The first and last ``m``
      frames cannot hold an onset (the score needs ``m`` frames on each side).
    * Frame: the first frame of the rise (the frame whose value includes the
      jump).

``'derivative'`` (the original's)
    ``scipy.signal.find_peaks(d, height=event_height)`` on ``d`` = the trace
    (``'zeroth'``), ``np.diff(x)`` (``'first'``) or ``np.diff(x, n=2)``
    (``'second'``), exactly as the original, with ``event_height`` in the
    derivative's absolute units. The original reported indices into ``d``; here
    they are converted to movie frames: ``d1[i] = x[i+1] - x[i]`` is the rise
    INTO frame ``i + 1``, and ``d2[i] = x[i+2] - 2 x[i+1] + x[i]`` is centred on
    frame ``i + 1``, so frame = index + 1 for the first and second derivative,
    and index for the zeroth.

``'spikes'``
    From the deconvolved spike matrix ``S`` (``spikes=``): runs of consecutive
    frames with ``S > 0`` are one event, kept when the run's total (the size of
    the jump it explains, in trace units) exceeds ``noise_threshold * sigma``;
    the event is at the run's largest spike.

Every method reports, per event: ``component_id``, ``frame`` (index into the
movie), ``time_s`` (from the recording's frame times, never ``frame / fps``),
``amplitude`` (trace value at the event frame), ``prominence`` (of the
detection signal's peak, measured within +-1 s; for 'spikes' the run's total
spike size), ``method``, ``threshold`` (in the method's units),
``threshold_abs`` (in the detection signal's units) and ``noise_sigma`` (the
trace noise used). The phase at each event is added by :func:`attach_phase`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.signal import find_peaks

from ace_neuro.errors import ParameterError, RawDataError
from ace_neuro.params import EventParams

log = logging.getLogger(__name__)

EVENT_METHODS = ("noise", "derivative", "spikes")
DERIVATIVES = ("zeroth", "first", "second")
#: frame offset from an index into the derivative array to the movie frame
DERIVATIVE_FRAME_OFFSET = {"zeroth": 0, "first": 1, "second": 1}
#: Gaussian consistency constant of the median absolute deviation
MAD_TO_SIGMA = 1.4826
#: components processed together (bounds memory for long recordings)
COMPONENT_CHUNK = 64
#: half-width of the window in which a peak's prominence is measured, seconds
PROMINENCE_HALF_WINDOW_S = 1.0

EVENT_COLUMNS = {
    "component_id": "int64", "frame": "int64", "time_s": "float64", "amplitude": "float64",
    "prominence": "float64", "method": "object", "threshold": "float64", "threshold_abs": "float64",
    "noise_sigma": "float64",
}


class EventError(RawDataError):
    """Event detection inputs that cannot be used (shapes, times, parameters)."""


class EventParameterError(ParameterError, EventError):
    """A parameter value this stage cannot use; ``parameter`` names it."""


# --------------------------------------------------------------------------- noise
def robust_noise(traces: np.ndarray) -> np.ndarray:
    """Robust white-noise standard deviation of each trace, ``1.4826 * MAD(diff(x)) / sqrt(2)``.

    Parameters
    ----------
    traces : ndarray, shape (T,) or (K, T)

    Returns
    -------
    ndarray, shape () or (K,), float64
    """
    x = np.asarray(traces)
    if x.shape[-1] < 3:
        raise EventError(f"a trace needs at least 3 frames to estimate its noise, got {x.shape[-1]}")
    rows = x.reshape(-1, x.shape[-1])
    mad = np.empty(rows.shape[0])
    for r0 in range(0, rows.shape[0], COMPONENT_CHUNK):
        d = np.diff(rows[r0:r0 + COMPONENT_CHUNK].astype(np.float64), axis=-1)
        d -= np.median(d, axis=-1, keepdims=True)
        mad[r0:r0 + COMPONENT_CHUNK] = np.median(np.abs(d, out=d), axis=-1)
    return (MAD_TO_SIGMA * mad / math.sqrt(2.0)).reshape(x.shape[:-1])


def onset_score(traces: np.ndarray, window: int) -> np.ndarray:
    """``score[..., i] = mean(x[i:i+m]) - mean(x[i-m:i])``; NaN where undefined (first/last ``m`` frames).

    Parameters
    ----------
    traces : ndarray, shape (K, T)
    window : int
        ``m``, frames on each side.
    """
    x = np.asarray(traces, dtype=np.float64)
    k, t = x.shape
    out = np.full((k, t), np.nan)
    if t < 2 * window + 1:
        return out
    cs = np.zeros((k, t + 1))
    np.cumsum(x, axis=1, out=cs[:, 1:])
    i = np.arange(window, t - window + 1)
    out[:, window:t - window + 1] = (cs[:, i + window] - 2 * cs[:, i] + cs[:, i - window]) / window
    return out


# --------------------------------------------------------------------------- detection
def detect_events(traces: np.ndarray, times: np.ndarray, params: EventParams, *,
                  component_ids: Sequence[int] | None = None, spikes: np.ndarray | None = None,
                  noise: np.ndarray | float | None = None, onset_window_s: float = 0.15) -> pd.DataFrame:
    """Detect calcium events in every trace.

    Parameters
    ----------
    traces : ndarray, shape (K, T) or (T,)
        Calcium traces of the accepted components (e.g. CNMF-E ``C``), one row each.
    times : ndarray, shape (T,)
        Frame times of the recording, seconds.
    params : EventParams
        ``method`` ('noise', 'derivative', 'spikes'), ``derivative_for_estimates``,
        ``event_height`` (derivative method, absolute units) and
        ``noise_threshold`` (noise and spikes methods, noise units).
    component_ids : sequence of int, length K, optional
        Ids to report (default ``0..K-1``).
    spikes : ndarray, shape (K, T), optional
        Deconvolved spikes; required by the 'spikes' method.
    noise : float or ndarray, shape (K,), optional
        Trace noise standard deviation per component (e.g. CNMF-E ``sn``);
        estimated with :func:`robust_noise` when not given.
    onset_window_s : float
        Smoothing of the onset score ('noise' method), seconds.

    Returns
    -------
    DataFrame
        One row per event, columns :data:`EVENT_COLUMNS`, in the order of the trace rows, then by frame.
        Empty (with those columns) when there are no events or the stage is disabled.
    """
    x = _as_traces(traces)
    k, t = x.shape
    times = _as_times(times, t)
    ids = _as_ids(component_ids, k)
    if params.method not in EVENT_METHODS:
        raise EventParameterError(f"event_method = {params.method!r}: expected one of {EVENT_METHODS}", parameter='event_method')
    if not params.enabled or k == 0:
        return empty_events()
    sigma = _as_noise(noise, x)
    fs = _sampling_rate(times)
    if params.method == "derivative":
        frames, comp, prom, thr, thr_abs = _derivative_events(x, params, fs)
    elif params.method == "noise":
        if not onset_window_s > 0:
            raise EventError(f"onset_window_s must be > 0 seconds, got {onset_window_s!r}")
        frames, comp, prom, thr, thr_abs = _noise_events(x, sigma, params.noise_threshold, onset_window_s, fs)
    else:
        if spikes is None:
            raise EventError("event_method 'spikes' needs the deconvolved spike matrix S (spikes=...); "
                             "run CNMF-E with deconvolution or choose event_method 'noise'")
        s = np.asarray(spikes)
        if s.ndim == 1:
            s = s[None, :]
        if s.shape != x.shape:
            raise EventError(f"spikes has shape {s.shape} but traces have {x.shape}; they must match")
        frames, comp, prom, thr, thr_abs = _spike_events(s, sigma, params.noise_threshold)
    return _events_frame(ids, comp, frames, times, x, prom, params.method, thr, thr_abs, sigma)


def _derivative_events(x, params: EventParams, fs):
    which = params.derivative_for_estimates
    if which not in DERIVATIVES:
        raise EventParameterError(f"derivative_for_estimates = {which!r}: expected one of {DERIVATIVES}", parameter='derivative_for_estimates')
    order = DERIVATIVES.index(which)
    offset = DERIVATIVE_FRAME_OFFSET[which]
    wlen = _prominence_wlen(fs)
    frames, comp, prom = [], [], []
    for r0 in range(0, x.shape[0], COMPONENT_CHUNK):
        chunk = x[r0:r0 + COMPONENT_CHUNK].astype(np.float64)
        d = np.diff(chunk, n=order, axis=1) if order else chunk
        for j in range(d.shape[0]):
            if d.shape[1] == 0:
                continue
            peaks, props = find_peaks(d[j], height=params.event_height, prominence=(None, None), wlen=wlen)
            frames.append(peaks + offset)
            comp.append(np.full(peaks.size, r0 + j))
            prom.append(props["prominences"])
    n = sum(len(f) for f in frames)
    height = float(params.event_height)
    return _cat(frames, int), _cat(comp, int), _cat(prom, float), np.full(n, height), np.full(n, height)


def _noise_events(x, sigma, n_sigma, onset_window_s, fs):
    m = max(1, int(math.floor(onset_window_s * fs + 0.5)))
    wlen = _prominence_wlen(fs)
    score_sd = sigma * math.sqrt(2.0 / m)
    frames, comp, prom, thr_abs = [], [], [], []
    for r0 in range(0, x.shape[0], COMPONENT_CHUNK):
        score = onset_score(x[r0:r0 + COMPONENT_CHUNK], m)
        for j in range(score.shape[0]):
            row = np.nan_to_num(score[j], nan=-np.inf)
            level = float(n_sigma * score_sd[r0 + j])
            peaks, props = find_peaks(row, height=level, distance=m, prominence=(None, None), wlen=wlen)
            frames.append(peaks)
            comp.append(np.full(peaks.size, r0 + j))
            prom.append(props["prominences"])
            thr_abs.append(np.full(peaks.size, level))
    n = sum(len(f) for f in frames)
    return _cat(frames, int), _cat(comp, int), _cat(prom, float), np.full(n, float(n_sigma)), _cat(thr_abs, float)


def _spike_events(s, sigma, n_sigma):
    active = s > 0
    # run starts/ends of consecutive non-zero spikes, per component, vectorised
    padded = np.zeros((s.shape[0], s.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = active
    edges = np.diff(padded, axis=1)
    comp_s, start = np.nonzero(edges == 1)
    comp_e, stop = np.nonzero(edges == -1)  # one past the run's last frame; same order as starts
    if comp_s.size == 0:
        return (np.empty(0, int),) * 2 + (np.empty(0),) * 3
    flat = np.where(active, s, 0).astype(np.float64)
    cs = np.zeros((s.shape[0], s.shape[1] + 1))
    np.cumsum(flat, axis=1, out=cs[:, 1:])
    size = cs[comp_s, stop] - cs[comp_s, start]
    level = n_sigma * sigma[comp_s]
    keep = size > level
    comp_s, start, stop, size, level = comp_s[keep], start[keep], stop[keep], size[keep], level[keep]
    frames = np.array([a + int(np.argmax(s[c, a:b])) for c, a, b in zip(comp_s, start, stop)], dtype=int)
    return frames, comp_s.astype(int), size, np.full(frames.size, float(n_sigma)), level


def _events_frame(ids, comp, frames, times, x, prom, method, thr, thr_abs, sigma) -> pd.DataFrame:
    if frames.size == 0:
        return empty_events()
    order = np.lexsort((frames, comp))
    comp, frames, prom, thr, thr_abs = comp[order], frames[order], prom[order], thr[order], thr_abs[order]
    df = pd.DataFrame({
        "component_id": ids[comp].astype(np.int64),
        "frame": frames.astype(np.int64),
        "time_s": times[frames].astype(np.float64),
        "amplitude": x[comp, frames].astype(np.float64),
        "prominence": prom.astype(np.float64),
        "method": method,
        "threshold": thr.astype(np.float64),
        "threshold_abs": thr_abs.astype(np.float64),
        "noise_sigma": sigma[comp].astype(np.float64),
    })
    return df.astype(EVENT_COLUMNS)


def empty_events() -> pd.DataFrame:
    """An events table with no rows and the right columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in EVENT_COLUMNS.items()})


def attach_phase(events: pd.DataFrame, phase_per_frame: np.ndarray, *,
                 component_ids: Sequence[int] | None = None, column: str = "phase_rad") -> pd.DataFrame:
    """Return a copy of ``events`` with the phase (radians) at each event's frame.

    Parameters
    ----------
    events : DataFrame
        From :func:`detect_events`.
    phase_per_frame : ndarray, shape (T,) or (K, T)
        One phase trace for all components (the mean field), or one per component.
    component_ids : sequence of int, length K, optional
        Which component each row of a 2-D ``phase_per_frame`` belongs to (default ``0..K-1``).
    column : str
        Name of the added column.
    """
    phase = np.asarray(phase_per_frame, dtype=np.float64)
    out = events.copy()
    if phase.ndim not in (1, 2):
        raise EventError(f"phase_per_frame must have shape (T,) or (K, T), got {phase.shape}")
    frames = out["frame"].to_numpy(dtype=np.int64)
    t = phase.shape[-1]
    if frames.size and (frames.min() < 0 or frames.max() >= t):
        raise EventError(f"events reach frame {frames.max()} but the phase has {t} frames; "
                         f"use the phase of the same recording")
    if phase.ndim == 1:
        out[column] = phase[frames]
        return out
    ids = _as_ids(component_ids, phase.shape[0])
    row_of = {int(c): r for r, c in enumerate(ids)}
    missing = sorted(set(out["component_id"].astype(int)) - set(row_of))
    if missing:
        raise EventError(f"no phase row for component ids {missing[:10]}; pass component_ids for the phase rows")
    rows = np.array([row_of[int(c)] for c in out["component_id"]], dtype=np.int64)
    out[column] = phase[rows, frames] if rows.size else np.empty(0)
    return out


# --------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class EventMatch:
    """Agreement between true and detected event frames.

    ``precision = n_matched / n_found`` (1 when nothing was found),
    ``recall = n_matched / n_true`` (1 when there was nothing to find),
    ``f1`` their harmonic mean. Matches add up over components with ``+``.
    """

    n_true: int
    n_found: int
    n_matched: int

    @property
    def precision(self) -> float:
        return self.n_matched / self.n_found if self.n_found else 1.0

    @property
    def recall(self) -> float:
        return self.n_matched / self.n_true if self.n_true else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def __add__(self, other: "EventMatch") -> "EventMatch":
        return EventMatch(self.n_true + other.n_true, self.n_found + other.n_found,
                          self.n_matched + other.n_matched)


def match_event_times(true_frames: Sequence[int], found_frames: Sequence[int], tolerance: int) -> EventMatch:
    """One-to-one matching of detected to true events within ``tolerance`` frames.

    Greedy in time order, which gives the largest possible number of matches for
    points on a line with a symmetric tolerance.
    """
    if tolerance < 0:
        raise EventError(f"tolerance must be >= 0 frames, got {tolerance}")
    tr = np.sort(np.asarray(true_frames, dtype=np.int64).ravel())
    fo = np.sort(np.asarray(found_frames, dtype=np.int64).ravel())
    i = j = matched = 0
    while i < tr.size and j < fo.size:
        if abs(int(tr[i]) - int(fo[j])) <= tolerance:
            matched += 1
            i += 1
            j += 1
        elif fo[j] < tr[i]:
            j += 1
        else:
            i += 1
    return EventMatch(n_true=int(tr.size), n_found=int(fo.size), n_matched=matched)


# --------------------------------------------------------------------------- validation
def _as_traces(traces) -> np.ndarray:
    x = np.asarray(traces)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise EventError(f"traces must have shape (components, frames), got {x.shape}")
    if x.dtype.kind not in "fiu":
        raise EventError(f"traces must be numeric, got dtype {x.dtype}")
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    bad = ~np.all(np.isfinite(x), axis=1)
    if bad.any():
        raise EventError(f"traces of component rows {np.flatnonzero(bad)[:10].tolist()} contain NaN or inf")
    return x


def _as_times(times, n: int) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64)
    if t.shape != (n,):
        raise EventError(f"times has shape {t.shape} but the traces have {n} frames; pass one time per frame")
    if n and (not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0)):
        raise EventError("times must be finite and non-decreasing (seconds from the recording's timestamps)")
    return t


def _as_ids(component_ids, k: int) -> np.ndarray:
    if component_ids is None:
        return np.arange(k, dtype=np.int64)
    ids = np.asarray(component_ids)
    if ids.shape != (k,):
        raise EventError(f"component_ids has {ids.size} entries but there are {k} traces")
    return ids.astype(np.int64)


def _as_noise(noise, x: np.ndarray) -> np.ndarray:
    k = x.shape[0]
    if noise is None:
        sigma = robust_noise(x) if x.shape[1] >= 3 else np.zeros(k)
    else:
        sigma = np.broadcast_to(np.asarray(noise, dtype=np.float64), (k,)).copy() if np.ndim(noise) == 0 \
            else np.asarray(noise, dtype=np.float64)
        if sigma.shape != (k,) or not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
            raise EventError(f"noise must be one non-negative value or one per component ({k}), got shape "
                             f"{np.shape(noise)}")
    # a noiseless trace would give a zero threshold: floor at float32 resolution of the trace
    peak = np.maximum(x.max(axis=1, initial=0.0), -x.min(axis=1, initial=0.0)).astype(np.float64)
    floor = 8 * np.finfo(np.float32).eps * np.maximum(peak, 1e-30)
    return np.maximum(sigma, floor)


def _sampling_rate(times: np.ndarray) -> float:
    if times.size < 2:
        return 1.0
    dt = float(np.median(np.diff(times)))
    if not dt > 0:
        raise EventError("times do not advance (median frame interval is 0); check the frame timestamps")
    return 1.0 / dt


def _prominence_wlen(fs: float) -> int:
    return 2 * max(1, int(round(PROMINENCE_HALF_WINDOW_S * fs))) + 1


def _cat(parts, dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)


def event_rates_per_minute(events: pd.DataFrame, component_ids, times: np.ndarray) -> pd.Series:
    """Events per minute of each component (0 for one without events), over the recording's duration.

    Empty when there are no components or the recording lasts a single frame.
    """
    ids = np.asarray(component_ids, dtype=int)
    times = np.asarray(times, dtype=float)
    minutes = (times[-1] - times[0]) / 60.0 if times.size > 1 else 0.0
    if not ids.size or minutes <= 0:
        return pd.Series(dtype=float)
    counts = events.groupby("component_id").size().reindex(ids, fill_value=0)
    return counts / minutes


__all__ = ["EventError", "EventMatch", "detect_events", "event_rates_per_minute", "attach_phase", "match_event_times", "robust_noise",
           "onset_score", "empty_events", "EVENT_COLUMNS", "EVENT_METHODS", "DERIVATIVE_FRAME_OFFSET"]
