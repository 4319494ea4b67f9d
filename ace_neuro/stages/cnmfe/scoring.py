"""Scoring extracted components against ground truth (synthetic recordings, demos).

Found footprints are matched one-to-one to true footprints by optimal
assignment (``scipy.optimize.linear_sum_assignment``) on their cosine
similarity; a pair counts as a match when the similarity is at least 0.5.

Detection is scored against the *detectable* true neurons (by default those
whose peak-to-noise ratio, as CNMF-E's seeding sees it, is at least
``min_pnr``): a found component matched to a detectable neuron is a true
positive, an unmatched detectable neuron a miss, a found component matched to
no true neuron a false positive. A component matched to a neuron too dim to be
required is neither (finding it is a bonus, not an error).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from .summary import box_kernel, kernel_size, pnr_calibration

__all__ = [
    "MatchResult", "DetectionScore", "match_footprints", "spike_f1", "filtered_pnr",
    "score_components", "score_against_truth", "observed_truth_traces", "MIN_SIMILARITY",
]

MIN_SIMILARITY = 0.5


def _as_matrix(footprints, n_pixels: int | None = None) -> sp.csc_matrix:
    """(K, H, W) dense or (P, K) sparse/dense -> (P, K) csc float64."""
    if sp.issparse(footprints):
        return sp.csc_matrix(footprints, dtype=np.float64)
    a = np.asarray(footprints, dtype=np.float64)
    if a.ndim == 3:
        return sp.csc_matrix(a.reshape(a.shape[0], -1).T)
    if a.ndim == 2:
        return sp.csc_matrix(a)
    raise ValueError(f"footprints must be (K, H, W) or (pixels, K), got shape {a.shape}")


@dataclass(frozen=True)
class MatchResult:
    """One-to-one matches between found (rows) and true (columns) footprints."""

    found: np.ndarray
    true: np.ndarray
    similarity: np.ndarray
    similarity_matrix: np.ndarray


def match_footprints(found, true, *, min_similarity: float = MIN_SIMILARITY) -> MatchResult:
    """Optimal one-to-one matching of footprints on cosine similarity.

    Parameters
    ----------
    found : sparse (P, K1) or ndarray (K1, H, W)
    true : sparse (P, K2) or ndarray (K2, H, W)
    min_similarity : float
        Matched pairs below this similarity are discarded.
    """
    F = _as_matrix(found)
    G = _as_matrix(true)
    if F.shape[0] != G.shape[0]:
        raise ValueError(f"found footprints have {F.shape[0]} pixels, true ones {G.shape[0]}")
    nf = np.sqrt(np.asarray(F.multiply(F).sum(axis=0))).ravel()
    ng = np.sqrt(np.asarray(G.multiply(G).sum(axis=0))).ravel()
    S = np.asarray((F.T @ G).todense()) / np.maximum(nf[:, None] * ng[None, :], 1e-12)
    if S.size == 0:
        z = np.zeros(0, int)
        return MatchResult(z, z, np.zeros(0), S)
    r, c = linear_sum_assignment(-S)
    ok = S[r, c] >= min_similarity
    return MatchResult(r[ok], c[ok], S[r[ok], c[ok]], S)


def spike_f1(true_spikes: np.ndarray, est_spikes: np.ndarray, *, tolerance: int = 2,
             min_true: float = 0.0, min_est: float = 0.0) -> float:
    """F1 of spike times within ``tolerance`` frames (one-to-one, greedy nearest).

    Parameters
    ----------
    true_spikes, est_spikes : ndarray, shape (T,)
        Spike amplitudes (0 = none).
    tolerance : int
        Frames by which an estimated spike may miss a true one.
    min_true, min_est : float
        Amplitudes at or below these are not spikes.
    """
    t = np.flatnonzero(np.asarray(true_spikes) > min_true)
    e = np.flatnonzero(np.asarray(est_spikes) > min_est)
    if len(t) == 0 and len(e) == 0:
        return 1.0
    if len(t) == 0 or len(e) == 0:
        return 0.0
    # candidate pairs within tolerance, matched greedily by distance
    pairs = []
    j0 = 0
    for i, ti in enumerate(t):
        while j0 < len(e) and e[j0] < ti - tolerance:
            j0 += 1
        j = j0
        while j < len(e) and e[j] <= ti + tolerance:
            pairs.append((abs(int(e[j]) - int(ti)), i, j))
            j += 1
    pairs.sort()
    used_t = np.zeros(len(t), bool)
    used_e = np.zeros(len(e), bool)
    tp = 0
    for _, i, j in pairs:
        if not used_t[i] and not used_e[j]:
            used_t[i] = used_e[j] = True
            tp += 1
    prec = tp / len(e)
    rec = tp / len(t)
    return 0.0 if tp == 0 else 2 * prec * rec / (prec + rec)


def filtered_pnr(footprints: np.ndarray, traces: np.ndarray, noise_std: np.ndarray,
                 gSig=(3, 3), *, gain_map: np.ndarray | None = None, center_psf: bool = True,
                 tsub: int = 1) -> np.ndarray:
    """Peak-to-noise ratio of true neurons as this engine's PNR image measures it.

    ``(max(trace) - mean(trace))`` times the peak of the filtered footprint, over
    the filtered white noise, in the units of :func:`~ace_neuro.stages.cnmfe.summary.pnr_calibration`.
    With ``tsub > 1`` the trace is first averaged over groups of ``tsub`` frames,
    as the initialisation sees it (a one-frame peak is diluted; noise drops by
    ``sqrt(tsub)`` and the image is rescaled by the same factor).

    Parameters
    ----------
    footprints : ndarray, shape (K, H, W)
    traces : ndarray, shape (K, T) or (K,)
        Each neuron's trace as it appears in the movie at the footprint peak
        (times bleaching), or directly its peak above the mean.
    noise_std : ndarray, shape (H, W)
        Per-pixel noise standard deviation.
    gSig : (int, int)
    gain_map : ndarray, shape (H, W), optional
        Multiplicative map applied to the footprints (e.g. vessel transmission).
    """
    traces = np.asarray(traces, dtype=np.float64)
    if traces.ndim == 2 and tsub > 1:
        n = (traces.shape[1] // tsub) * tsub
        traces = traces[:, :n].reshape(len(traces), n // tsub, tsub).mean(axis=2)
    peak = traces.max(axis=1) - traces.mean(axis=1) if traces.ndim == 2 else traces
    k = box_kernel(gSig) if center_psf else box_kernel(gSig) + 1.0 / np.prod(kernel_size(gSig))
    knorm = float(np.sqrt((k * k).sum()))
    calib = pnr_calibration(gSig, center_psf=center_psf)
    out = np.zeros(len(footprints))
    for i, a in enumerate(footprints):
        a = np.asarray(a, dtype=np.float32)
        if gain_map is not None:
            a = a * gain_map.astype(np.float32)
        fa = cv2.filter2D(a, -1, k.astype(np.float32), borderType=cv2.BORDER_REPLICATE)
        py, px = np.unravel_index(int(np.argmax(fa)), fa.shape)
        out[i] = float(peak[i]) * fa[py, px] / (float(noise_std[py, px]) * knorm) / calib
    return out


@dataclass(frozen=True)
class DetectionScore:
    """Scores of one extraction against ground truth.

    Attributes
    ----------
    n_found, n_true, n_detectable : int
    tp, fp, fn : int
    precision, recall, f1 : float
    footprint_corr : ndarray
        Pearson correlation of matched (detectable) footprint pairs.
    trace_r : ndarray
        Pearson r of matched traces (found C vs true observed trace).
    spike_f1 : ndarray
        Spike-time F1 of matched neurons with SNR >= ``spike_min_snr``.
    matches : MatchResult
    """

    n_found: int
    n_true: int
    n_detectable: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    footprint_corr: np.ndarray
    trace_r: np.ndarray
    spike_f1: np.ndarray
    matches: MatchResult

    def summary(self) -> dict:
        """Headline numbers (medians over matched neurons; NaN when none)."""
        med = lambda v: float(np.median(v)) if len(v) else float("nan")  # noqa: E731
        return {"n_found": self.n_found, "n_true": self.n_true, "n_detectable": self.n_detectable,
                "tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1, "footprint_corr": med(self.footprint_corr),
                "trace_r": med(self.trace_r), "spike_f1": med(self.spike_f1)}


def score_components(A_found, C_found, S_found, true_footprints, true_traces, *, true_spikes=None,
                     detectable=None, true_snr=None, spike_min_snr: float = 5.0,
                     min_similarity: float = MIN_SIMILARITY, tolerance: int = 2) -> DetectionScore:
    """Match found components to the truth and score detection, footprints, traces, spikes.

    Parameters
    ----------
    A_found : sparse (P, K1) or ndarray (K1, H, W)
    C_found, S_found : ndarray, shape (K1, T)
        Traces and spikes (``S_found`` may be None to skip spike scoring).
    true_footprints : ndarray, shape (K2, H, W)
    true_traces : ndarray, shape (K2, T)
        True traces as they appear in the movie.
    true_spikes : ndarray, shape (K2, T), optional
    detectable : bool ndarray, shape (K2,), optional
        True neurons required to be found (default all).
    true_snr : ndarray, shape (K2,), optional
        For selecting neurons whose spikes are scored.
    """
    K2 = len(true_footprints)
    detectable = np.ones(K2, bool) if detectable is None else np.asarray(detectable, bool)
    m = match_footprints(A_found, true_footprints, min_similarity=min_similarity)
    n_found = _as_matrix(A_found).shape[1]
    det_match = detectable[m.true]
    tp = int(det_match.sum())
    fp = int(n_found - len(m.found))
    fn = int(detectable.sum() - tp)
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")
    F = _as_matrix(A_found)
    G = _as_matrix(true_footprints)
    fcorr, tr, sf = [], [], []
    for fi, ti, det in zip(m.found, m.true, det_match):
        if not det:
            continue
        a = np.asarray(F[:, fi].todense()).ravel()
        b = np.asarray(G[:, ti].todense()).ravel()
        fcorr.append(_pearson(a, b))
        tr.append(_pearson(np.asarray(C_found[fi], float), np.asarray(true_traces[ti], float)))
        if S_found is not None and true_spikes is not None and (true_snr is None or true_snr[ti] >= spike_min_snr):
            sf.append(spike_f1(true_spikes[ti], S_found[fi], tolerance=tolerance))
    return DetectionScore(n_found=int(n_found), n_true=K2, n_detectable=int(detectable.sum()), tp=tp, fp=fp,
                          fn=fn, precision=prec, recall=rec, f1=f1, footprint_corr=np.array(fcorr),
                          trace_r=np.array(tr), spike_f1=np.array(sf), matches=m)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / d) if d > 0 else 0.0


def score_against_truth(result, truth, *, min_pnr: float | None = None, gSig=None,
                        accepted: np.ndarray | None = None, spike_min_snr: float = 5.0,
                        tolerance: int = 2) -> DetectionScore:
    """Score a :class:`~ace_neuro.stages.cnmfe.result.CnmfeResult` against a synthetic ground truth.

    Parameters
    ----------
    result : CnmfeResult
    truth : GroundTruth
        From :mod:`ace_neuro.synthetic` (footprints, traces, spikes, bleach,
        vessels, noise_std, snr).
    min_pnr : float, optional
        True neurons whose filtered PNR (:func:`filtered_pnr`) is below this are
        not required (default: ``result.params['min_pnr']``).
    gSig : (int, int), optional
        Filter for the PNR (default: ``result.params['gSig']``).
    accepted : bool ndarray, shape (K,), optional
        Only these found components are scored (e.g. evaluation's accepted column).

    A result computed on the first ``T`` frames of the recording is scored
    against the first ``T`` frames of the truth.
    """
    params = dict(result.params)
    min_pnr = float(params.get("min_pnr", 10.0) if min_pnr is None else min_pnr)
    gSig = tuple(params.get("gSig", (3, 3)) if gSig is None else gSig)
    T = result.n_frames
    if T > truth.traces.shape[1]:
        raise ValueError(f"the result has {T} frames but the ground truth only {truth.traces.shape[1]}")
    obs = observed_truth_traces(truth)[:, :T]
    pnr = filtered_pnr(truth.footprints, (truth.traces * truth.bleach[None, :])[:, :T], truth.noise_std,
                       gSig, gain_map=truth.vessels, tsub=int(params.get("tsub", 1)))
    A, C, S = result.A, result.C, result.S
    if accepted is not None:
        idx = np.flatnonzero(np.asarray(accepted, bool))
        A, C, S = A[:, idx], C[idx], S[idx]
    return score_components(A, C, S, truth.footprints, obs, true_spikes=truth.spikes[:, :T],
                            detectable=pnr >= min_pnr,
                            true_snr=truth.snr, spike_min_snr=spike_min_snr, tolerance=tolerance)


def observed_truth_traces(truth) -> np.ndarray:
    """True traces as seen in the movie at each footprint's peak (x bleaching x vessel), (K, T)."""
    out = np.empty(truth.traces.shape, np.float32)
    H, W = truth.footprints.shape[1:]
    for i, a in enumerate(truth.footprints):
        py, px = np.unravel_index(int(np.argmax(a)), (H, W))
        out[i] = truth.traces[i] * truth.bleach * truth.vessels[py, px]
    return out
