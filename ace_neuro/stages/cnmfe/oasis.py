"""Deconvolution of calcium traces with OASIS (Friedrich, Zhou & Paninski 2017).

The calcium trace ``c`` of a neuron follows an autoregressive model driven by
non-negative spikes ``s``:

* AR(1): ``c[t] = g * c[t-1] + s[t]``
* AR(2): ``c[t] = g1 * c[t-1] + g2 * c[t-2] + s[t]``

and the observed trace is ``y = b + c + noise``. OASIS solves the non-negative
least-squares problem ``min ||y - b - c||^2`` subject to ``s >= 0`` (or, with a
minimal spike size, ``s[t] = 0 or s[t] >= s_min``) by pooling adjacent time
points. Here the pool-adjacent-violators loop runs over time once and is
vectorised across traces, so K traces cost about as much Python as one.

Choices (documented because they differ from CaImAn's defaults):

* The AR(1) root comes from ``decay_time``: ``g = exp(-1 / (decay_time * frame_rate))``.
  The CSV parameter therefore means what it says; it is not re-estimated per trace.
* AR(2) is handled exactly as ``(1 - d B)(1 - r B) c = s`` with decay root ``d``
  from ``decay_time`` and a rise root ``r`` fitted to the trace's
  autocovariance. The rise is removed by the first-order filter ``y[t] - r y[t-1]``,
  the result is deconvolved with the AR(1) decay root, and ``c`` is the AR(1)
  output re-filtered with the rise root (so ``c >= 0`` and ``s >= 0`` hold).
* Sparsity comes from a minimal spike size ``s_min`` in units of the trace's
  noise (hard threshold, "OASIS with s_min"), which gives clean spike trains,
  rather than from an L1 penalty.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import CnmfeParameterError

__all__ = [
    "Deconvolution", "ar1_root", "noise_psd", "noise_mad", "oasis_ar1", "estimate_baseline",
    "fit_rise_root", "deconvolve",
]

#: default minimal spike size, in units of the trace's noise standard deviation
DEFAULT_S_MIN_FACTOR = 2.0


@dataclass(frozen=True)
class Deconvolution:
    """Result of :func:`deconvolve` for K traces of T frames.

    Attributes
    ----------
    c : ndarray, shape (K, T), float32
        Denoised calcium traces (baseline removed, non-negative).
    s : ndarray, shape (K, T), float32
        Spike amplitudes (``c`` units); zero where no spike.
    baseline : ndarray, shape (K,)
        Constant baseline ``b`` removed from each trace.
    g : ndarray, shape (K, 2)
        AR coefficients ``(g1, g2)``; ``g2 = 0`` for AR(1), both 0 for p=0.
    sn : ndarray, shape (K,)
        Noise standard deviation of each input trace.
    """

    c: np.ndarray
    s: np.ndarray
    baseline: np.ndarray
    g: np.ndarray
    sn: np.ndarray


def ar1_root(decay_time: float, frame_rate: float) -> float:
    """AR(1) coefficient of an exponential decay: ``exp(-1 / (decay_time * frame_rate))``.

    Parameters
    ----------
    decay_time : float
        Decay time constant in seconds (> 0).
    frame_rate : float
        Frames per second (> 0).
    """
    if not decay_time > 0:
        raise CnmfeParameterError(f"decay_time must be > 0 seconds, got {decay_time!r}")
    if not frame_rate > 0:
        raise CnmfeParameterError(f"frame_rate must be > 0 frames/s, got {frame_rate!r}")
    return float(np.exp(-1.0 / (decay_time * frame_rate)))


def noise_psd(y: np.ndarray, *, freq_range: tuple[float, float] = (0.25, 0.5)) -> np.ndarray:
    """Noise standard deviation from the mean power spectral density at high frequencies.

    Calcium transients are slow, so the power between ``freq_range`` (in units of
    the sampling rate; 0.5 is Nyquist) is dominated by white noise, whose
    periodogram has expectation ``sigma**2`` at every frequency.

    Parameters
    ----------
    y : ndarray, shape (..., T)
        Traces along the last axis.
    freq_range : (float, float)
        Frequency band used, as fractions of the sampling rate.

    Returns
    -------
    ndarray, shape (...)
        Noise standard deviation of each trace (same units as ``y``).
    """
    y = np.asarray(y, dtype=np.float64)
    T = y.shape[-1]
    if T < 4:
        raise CnmfeParameterError(f"need at least 4 frames to estimate noise, got {T}")
    y = y - y.mean(axis=-1, keepdims=True)
    spec = np.fft.rfft(y, axis=-1)
    freqs = np.fft.rfftfreq(T)
    band = (freqs >= freq_range[0]) & (freqs <= freq_range[1])
    if not band.any():
        band = freqs >= freqs[len(freqs) // 2]
    power = (spec[..., band].real ** 2 + spec[..., band].imag ** 2) / T
    # a real signal's rfft bins (except DC/Nyquist) carry the variance once per bin
    return np.sqrt(power.mean(axis=-1))


def noise_mad(y: np.ndarray) -> np.ndarray:
    """Robust noise standard deviation from second differences in time.

    ``1.4826 * MAD(d2) / sqrt(6)`` along the last axis, with
    ``d2[t] = y[t] - 2 y[t-1] + y[t-2]``: white noise sets the typical value,
    the median ignores the few samples around a spike, and second differences
    cancel slow decays. Preferred over :func:`noise_psd` for traces with
    instantaneous rises, whose high-frequency power is not noise.

    Parameters
    ----------
    y : ndarray, shape (..., T)

    Returns
    -------
    ndarray, shape (...)
    """
    y = np.asarray(y, dtype=np.float64)
    if y.shape[-1] < 4:
        raise CnmfeParameterError(f"need at least 4 frames to estimate noise, got {y.shape[-1]}")
    d = y[..., 2:] - 2.0 * y[..., 1:-1] + y[..., :-2]
    med = np.median(d, axis=-1, keepdims=True)
    return 1.4826 * np.median(np.abs(d - med), axis=-1) / np.sqrt(6.0)


def oasis_ar1(y: np.ndarray, g, *, s_min=0.0, lam=0.0,
              batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """OASIS for AR(1): non-negative deconvolution of each row of ``y``.

    Solves, per row, ``min_c 1/2 ||y - c||^2 + lam * sum(s)`` with
    ``s[t] = c[t] - g c[t-1]`` and ``s[t] = 0 or s[t] >= s_min``, ``c >= 0``.

    Parameters
    ----------
    y : ndarray, shape (K, T) or (T,)
        Traces with the baseline already removed.
    g : float or array of shape (K,)
        AR(1) coefficients in [0, 1).
    s_min : float or array of shape (K,)
        Minimal spike size (same units as ``y``); 0 = plain non-negativity.
    lam : float or array of shape (K,)
        L1 sparsity penalty on the spikes.
    batch_size : int, optional
        Traces processed together; memory is about 13 bytes x batch x T. Default:
        as many as fit in ~400 MB (at least 32). The Python loop runs once per
        frame and batch, so larger batches are faster.

    Returns
    -------
    c, s : ndarray, same shape as ``y``, float64
        Calcium and spike estimates.
    """
    y = np.asarray(y, dtype=np.float64)
    one_d = y.ndim == 1
    y2 = np.atleast_2d(y)
    if y2.ndim != 2:
        raise CnmfeParameterError(f"traces must be 1-D or 2-D (K, T), got shape {y.shape}")
    K, T = y2.shape
    g = np.broadcast_to(np.asarray(g, dtype=np.float64), (K,)).copy()
    if np.any((g < 0) | (g >= 1)):
        raise CnmfeParameterError(f"AR(1) coefficient g must lie in [0, 1), got {g.min()}..{g.max()}")
    s_min = np.broadcast_to(np.asarray(s_min, dtype=np.float64), (K,))
    lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), (K,))
    c = np.zeros((K, T))
    if T == 0 or K == 0:
        return (c[0], c[0].copy()) if one_d else (c, c.copy())
    yy = y2.copy()
    if np.any(lam != 0):
        yy[:, :-1] -= (lam * (1 - g))[:, None]
        yy[:, -1] -= lam
    starts = np.zeros((K, T), dtype=bool)
    if batch_size is None:
        batch_size = max(32, int(4e8 // (13 * max(T, 1))))
    for k0 in range(0, K, batch_size):
        sl = slice(k0, min(K, k0 + batch_size))
        c[sl], starts[sl] = _pool_ar1(yy[sl], g[sl], s_min[sl])
    # spikes sit only at pool starts (inside a pool c decays exactly)
    s = np.zeros_like(c)
    s[:, 1:] = c[:, 1:] - g[:, None] * c[:, :-1]
    s[:, 0] = c[:, 0]
    s[~starts] = 0.0
    np.maximum(s, 0, out=s)
    if one_d:
        return c[0], s[0]
    return c, s


def _pool_ar1(y: np.ndarray, g: np.ndarray, s_min: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators over time, all rows in lock-step; returns (c, pool-start mask)."""
    K, T = y.shape
    with np.errstate(divide="ignore"):
        logg = np.where(g > 0, np.log(np.maximum(g, 1e-300)), -np.inf)
    # pool values and weights in float32 (weighted means of the data), lengths in int32.
    # Slots above a trace's stack always hold weight 1 and length 1 (reset when a pool is
    # merged away), so pushing a new pool only writes its value.
    V = np.empty((K, T), np.float32)
    Wt = np.ones((K, T), np.float32)
    L = np.ones((K, T), dtype=np.int32)
    n = np.zeros(K, dtype=np.int64)
    rows = np.arange(K)
    yT = np.ascontiguousarray(y.T)
    if T:
        V[:, 0] = yT[0]
        n[:] = 1
    for t in range(1, T):
        yt = yT[t]
        prev = n - 1
        # fast path: the new point violates the previous pool's decay for few traces
        viol = V[rows, prev] * np.exp(L[rows, prev] * logg) + s_min > yt
        V[rows, n] = yt
        n += 1
        cand = rows[viol]
        while cand.size:
            top = n[cand] - 1
            prev = top - 1
            lp = L[cand, prev]
            gp = np.exp(lp * logg[cand])
            vprev = V[cand, prev]
            vtop = V[cand, top]
            wprev = Wt[cand, prev]
            wtop = Wt[cand, top]
            wnew = wprev + gp * gp * wtop
            V[cand, prev] = (wprev * vprev + gp * wtop * vtop) / wnew
            Wt[cand, prev] = wnew
            L[cand, prev] = lp + L[cand, top]
            Wt[cand, top] = 1.0
            L[cand, top] = 1
            n[cand] -= 1
            # merged pools may now violate the pool before them
            cand = cand[n[cand] > 1]
            if not cand.size:
                break
            top = n[cand] - 1
            prev = top - 1
            still = V[cand, prev] * np.exp(L[cand, prev] * logg[cand]) + s_min[cand] > V[cand, top]
            cand = cand[still]
    out = np.empty((K, T))
    start_mask = np.zeros((K, T), dtype=bool)
    for k in range(K):
        nk = n[k]
        lengths = L[k, :nk].astype(np.int64)
        vals = np.maximum(V[k, :nk].astype(np.float64), 0.0)
        starts = np.cumsum(lengths) - lengths
        start_mask[k, starts] = True
        within = np.arange(T) - np.repeat(starts, lengths)
        decay = np.exp(within * logg[k]) if g[k] > 0 else (within == 0).astype(float)
        out[k] = np.repeat(vals, lengths) * decay
    return out, start_mask


def estimate_baseline(y: np.ndarray, sn: np.ndarray) -> np.ndarray:
    """Baseline of sparse-activity traces: the mode of the value distribution.

    Transients are positive excursions, so the most frequent value (histogram
    with bins of half a noise standard deviation, lightly smoothed) is the
    resting level even when a neuron is active a large fraction of the time.

    Parameters
    ----------
    y : ndarray, shape (K, T)
    sn : ndarray, shape (K,)
        Noise standard deviations.

    Returns
    -------
    ndarray, shape (K,)
    """
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    out = np.empty(y.shape[0])
    for k, row in enumerate(y):
        lo, hi = np.percentile(row, [0.5, 99.5])
        width = max(float(sn[k]) / 2.0, 1e-12)
        if not hi > lo:
            out[k] = float(np.median(row))
            continue
        nbins = int(min(max((hi - lo) / width, 8), 4000))
        counts, edges = np.histogram(row, bins=nbins, range=(lo, hi))
        counts = np.convolve(counts, np.ones(3) / 3, mode="same")
        i = int(np.argmax(counts))
        centre = 0.5 * (edges[i] + edges[i + 1])
        near = np.abs(row - centre) < 2 * width
        out[k] = float(np.mean(row[near])) if near.any() else centre
    return out


def fit_rise_root(y: np.ndarray, d: float, sn: float, *, max_lag: int = 10) -> float:
    """Rise root ``r`` of an AR(2) trace with known decay root ``d``.

    The autocovariance of ``c`` with kernel ``(d^k - r^k)/(d - r)`` is fitted at
    lags 1..``max_lag`` (lag 0 carries the noise) by a 1-D grid search over
    ``r`` in ``[0, d)``; the amplitude is solved in closed form.
    """
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    T = len(y)
    lags = np.arange(1, min(max_lag, T - 1) + 1)
    if len(lags) < 2:
        return 0.0
    acov = np.array([np.dot(y[:-lag], y[lag:]) / (T - lag) for lag in lags])
    best_r, best_err = 0.0, np.inf
    for r in np.linspace(0.0, d * 0.98, 50):
        model = _ar2_acov_shape(d, r, lags)
        denom = float(model @ model)
        if denom <= 0:
            continue
        amp = max(float(model @ acov) / denom, 0.0)
        err = float(np.sum((acov - amp * model) ** 2))
        if err < best_err:
            best_r, best_err = float(r), err
    return best_r


def _ar2_acov_shape(d: float, r: float, lags: np.ndarray) -> np.ndarray:
    """Autocovariance shape of an AR(2) process with real roots d > r >= 0."""
    # acov(k) proportional to d^(k+1)/(1-d^2) - r^(k+1)/(1-r^2) ... times 1/((1 - d r)(d - r))
    if abs(d - r) < 1e-9:
        r = d - 1e-6
    return (d ** (lags + 1) / (1 - d * d) - r ** (lags + 1) / (1 - r * r)) / (d - r)


def deconvolve(traces: np.ndarray, *, p: int, decay_time: float, frame_rate: float,
               s_min_factor: float = DEFAULT_S_MIN_FACTOR, sn: np.ndarray | None = None,
               baseline_iterations: int = 1) -> Deconvolution:
    """Deconvolve K raw traces with an AR(``p``) model and OASIS.

    Parameters
    ----------
    traces : ndarray, shape (K, T)
        Raw traces (e.g. CNMF-E's ``C + YrA``), any baseline.
    p : int
        AR order: 0 (no dynamics: ``c = max(y - b, 0)``, ``s = c``), 1 or 2.
    decay_time : float
        Indicator decay time constant in seconds.
    frame_rate : float
        Frames per second.
    s_min_factor : float
        Minimal spike size in units of each trace's noise standard deviation.
    sn : ndarray, shape (K,), optional
        Noise levels; estimated with :func:`noise_mad` when omitted.
    baseline_iterations : int
        Refinements of the baseline from the residual ``y - c``.

    Returns
    -------
    Deconvolution
    """
    y = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    if y.ndim != 2:
        raise CnmfeParameterError(f"traces must have shape (K, T), got {np.shape(traces)}")
    if p not in (0, 1, 2):
        raise CnmfeParameterError(f"p (AR order) must be 0, 1 or 2, got {p!r}")
    K, T = y.shape
    if K == 0:
        z = np.zeros((0, T), np.float32)
        return Deconvolution(z, z.copy(), np.zeros(0), np.zeros((0, 2)), np.zeros(0))
    sn = noise_mad(y) if sn is None else np.asarray(sn, dtype=np.float64)
    sn = np.maximum(sn, 1e-9 * (np.abs(y).max(axis=1) + 1e-12))
    b = estimate_baseline(y, sn)
    g = np.zeros((K, 2))
    if p == 0:
        c = np.maximum(y - b[:, None], 0.0)
        return Deconvolution(c.astype(np.float32), c.astype(np.float32), b, g, sn)
    d = ar1_root(decay_time, frame_rate)
    rise = np.zeros(K)
    if p == 2:
        rise = np.array([fit_rise_root(row - bk, d, sk) for row, bk, sk in zip(y, b, sn)])
    g[:, 0] = d + rise
    g[:, 1] = -d * rise
    s_min = s_min_factor * sn
    c = s = None
    for it in range(max(1, baseline_iterations + 1)):
        yb = y - b[:, None]
        if p == 2:
            # remove the rise root, deconvolve the decay, restore the rise
            u_in = yb.copy()
            u_in[:, 1:] -= rise[:, None] * yb[:, :-1]
            u, s = oasis_ar1(u_in, d, s_min=s_min)
            c = _filter_rise(u, rise)
        else:
            c, s = oasis_ar1(yb, d, s_min=s_min)
        if it < baseline_iterations:
            b = b + np.median(yb - c, axis=1)
    return Deconvolution(c.astype(np.float32), s.astype(np.float32), b, g, sn)


def _filter_rise(u: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``c[t] = u[t] + r c[t-1]`` per row (vectorised over rows)."""
    from scipy.signal import lfilter

    out = np.empty_like(u)
    for val in np.unique(r):
        rows = r == val
        out[rows] = lfilter([1.0], [1.0, -val], u[rows], axis=1) if val > 0 else u[rows]
    return out
