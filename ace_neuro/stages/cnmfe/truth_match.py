"""Matching found components to an independent ground truth by energy-mask IoU.

The convention of external simulators' scorecards (minisim, CaImAn's benchmarks): each
footprint is binarised to its *energy mask* - the smallest set of its brightest pixels holding
``energy_fraction`` (90 %) of its summed intensity - and found and true masks are paired one
to one by optimal assignment (``scipy.optimize.linear_sum_assignment``) maximising the total
intersection-over-union; an assigned pair is a match when its IoU is at least ``min_iou``
(0.5). Precision is matches over found components, recall matches over true units.

Unlike :mod:`ace_neuro.stages.cnmfe.scoring` (cosine similarity on this package's own forward
model), nothing here depends on how the truth was made: footprints are sparse ``(pixels, K)``
matrices (pixel index ``y * W + x``, as ``CnmfeResult.A``) or dense ``(K, H, W)`` stacks.

Motion: footprints found in a motion-corrected movie sit in the registration template's frame,
a constant offset from the truth's reference frame. :func:`trajectory_offset` reads it off the
two displacement trajectories (both as *content displacements*, the sign of ace_neuro's
``rigid_shifts``) and ``match_by_energy_iou(..., shift=...)`` moves the found footprints by it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

__all__ = ["TruthMatch", "energy_masks", "iou_matrix", "shift_footprints", "trajectory_offset",
           "match_by_energy_iou", "matched_trace_r", "offset_aligned_rmse", "ENERGY_FRACTION", "MIN_IOU"]

ENERGY_FRACTION = 0.9
MIN_IOU = 0.5


@dataclass(frozen=True)
class TruthMatch:
    """Outcome of :func:`match_by_energy_iou`.

    Attributes
    ----------
    n_found, n_true, n_matched : int
        Found components, true units, and assigned pairs with IoU >= ``min_iou``.
    precision, recall, f1 : float
        ``n_matched / n_found``, ``n_matched / n_true`` and their harmonic mean (0 when undefined).
    mean_iou : float
        Mean IoU of the matched pairs (NaN when there are none).
    found, true : ndarray of int
        Indices of the matched found components and of their true units, pair by pair.
    iou : ndarray
        IoU of each matched pair.
    shift : (int, int)
        ``(dy, dx)`` px the found footprints were moved by before matching.
    """

    n_found: int
    n_true: int
    n_matched: int
    precision: float
    recall: float
    f1: float
    mean_iou: float
    found: np.ndarray
    true: np.ndarray
    iou: np.ndarray
    shift: tuple[int, int] = (0, 0)

    def summary(self) -> dict:
        """The headline numbers as plain values."""
        return {"n_found": self.n_found, "n_true": self.n_true, "n_matched": self.n_matched,
                "precision": self.precision, "recall": self.recall, "f1": self.f1, "mean_iou": self.mean_iou,
                "shift": list(self.shift)}


def _pixel_matrix(footprints) -> tuple[sp.csc_matrix, tuple[int, int] | None]:
    """``(csc (pixels, K) float64 with negatives dropped, (H, W) when known)``."""
    if sp.issparse(footprints):
        m, dims = sp.csc_matrix(footprints, dtype=np.float64, copy=True), None
    else:
        stack = np.asarray(footprints, dtype=np.float64)
        if stack.ndim != 3:
            raise ValueError(f"footprints must be sparse (pixels, K) or dense (K, H, W); got shape {stack.shape}")
        dims = (int(stack.shape[1]), int(stack.shape[2]))
        m = sp.csc_matrix(stack.reshape(stack.shape[0], -1).T)
    m.data = np.where(m.data > 0, m.data, 0.0)
    m.eliminate_zeros()
    return m, dims


def energy_masks(footprints, energy_fraction: float = ENERGY_FRACTION) -> sp.csc_matrix:
    """Binarise each footprint to its smallest brightest pixel set holding ``energy_fraction`` of it.

    Parameters
    ----------
    footprints : sparse (pixels, K) or ndarray (K, H, W)
        Non-negative footprints (negative values are ignored).
    energy_fraction : float
        In (0, 1].

    Returns
    -------
    scipy.sparse.csc_matrix, shape (pixels, K), bool
        An all-zero footprint has an empty mask. Equal values are taken in pixel order.
    """
    if not 0.0 < energy_fraction <= 1.0:
        raise ValueError(f"energy_fraction = {energy_fraction}: give a value in (0, 1]")
    m, _ = _pixel_matrix(footprints)
    rows, counts = [], []
    for k in range(m.shape[1]):
        lo, hi = m.indptr[k], m.indptr[k + 1]
        values, pixels = m.data[lo:hi], m.indices[lo:hi]
        order = np.argsort(-values, kind="stable")
        cumulative = np.cumsum(values[order])
        n_keep = 0 if values.size == 0 else min(values.size, int(np.searchsorted(
            cumulative, energy_fraction * values.sum(), side="left")) + 1)
        rows.append(np.sort(pixels[order[:n_keep]]))
        counts.append(n_keep)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    return sp.csc_matrix((np.ones(indices.size, bool), indices, indptr), shape=m.shape)


def iou_matrix(masks_a: sp.csc_matrix, masks_b: sp.csc_matrix) -> np.ndarray:
    """Pairwise intersection-over-union of two sets of boolean masks, shape (K_a, K_b)."""
    a = sp.csc_matrix(masks_a, dtype=np.float64)
    b = sp.csc_matrix(masks_b, dtype=np.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"masks cover {a.shape[0]} and {b.shape[0]} pixels: give footprints of one frame size")
    inter = np.asarray((a.T @ b).todense(), dtype=np.float64)
    union = np.asarray(a.sum(axis=0)).reshape(-1, 1) + np.asarray(b.sum(axis=0)).reshape(1, -1) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def shift_footprints(footprints, dims: tuple[int, int], dy: int, dx: int) -> sp.csc_matrix:
    """Move footprints by whole pixels: value at (y, x) goes to (y + dy, x + dx); what leaves is dropped.

    Parameters
    ----------
    footprints : sparse (H*W, K) or ndarray (K, H, W)
    dims : (H, W)
    dy, dx : int

    Returns
    -------
    scipy.sparse.csc_matrix, shape (H*W, K), float64
    """
    m, _ = _pixel_matrix(footprints)
    h, w = (int(d) for d in dims)
    coo = m.tocoo()
    y, x = coo.row // w + int(dy), coo.row % w + int(dx)
    keep = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    return sp.csc_matrix((coo.data[keep], (y[keep] * w + x[keep], coo.col[keep])), shape=m.shape)


def trajectory_offset(found_displacements, true_displacements) -> tuple[int, int]:
    """Whole-pixel ``(dy, dx)`` that moves found footprints onto the truth's frame.

    Both trajectories are ``(T, 2)`` content displacements (ace_neuro's ``rigid_shifts``: frame
    content vs the template; the truth's: frame content vs its reference frame). Their mean
    difference ``found - true`` is the template's place in the reference frame, negated: footprints
    drawn in the template frame, moved by it, land on the truth's footprints.
    """
    f = np.asarray(found_displacements, dtype=np.float64)
    t = np.asarray(true_displacements, dtype=np.float64)
    if f.shape != t.shape or f.ndim != 2 or f.shape[1] != 2:
        raise ValueError(f"trajectories of shapes {f.shape} and {t.shape}: give two (T, 2) arrays")
    dy, dx = (f - t).mean(axis=0)
    return int(round(float(dy))), int(round(float(dx)))


def match_by_energy_iou(found, true, *, dims: tuple[int, int] | None = None,
                        energy_fraction: float = ENERGY_FRACTION, min_iou: float = MIN_IOU,
                        shift: tuple[int, int] = (0, 0)) -> TruthMatch:
    """Pair found components with true units one to one on their energy-mask IoU.

    Parameters
    ----------
    found, true : sparse (pixels, K) or ndarray (K, H, W)
        Footprints in one frame (the same pixel layout).
    dims : (H, W), optional
        Frame size; needed with sparse footprints and a non-zero ``shift``.
    energy_fraction : float
        Share of each footprint's energy its mask keeps.
    min_iou : float
        Smallest IoU of a matched pair.
    shift : (int, int)
        ``(dy, dx)`` to move the found footprints by first (see :func:`trajectory_offset`).

    Returns
    -------
    TruthMatch
    """
    found_m, found_dims = _pixel_matrix(found)
    dims = dims or found_dims or _pixel_matrix(true)[1]
    if tuple(shift) != (0, 0):
        if dims is None:
            raise ValueError("a shift needs the frame size: pass dims=(H, W) with sparse footprints")
        found_m = shift_footprints(found_m, dims, *shift)
    iou = iou_matrix(energy_masks(found_m, energy_fraction), energy_masks(true, energy_fraction))
    rows, cols = linear_sum_assignment(iou, maximize=True) if iou.size else (np.zeros(0, int), np.zeros(0, int))
    ok = iou[rows, cols] >= min_iou
    n_found, n_true, n_matched = iou.shape[0], iou.shape[1], int(ok.sum())
    precision = n_matched / n_found if n_found else 0.0
    recall = n_matched / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    pair_iou = iou[rows[ok], cols[ok]]
    return TruthMatch(n_found=n_found, n_true=n_true, n_matched=n_matched, precision=precision, recall=recall,
                      f1=f1, mean_iou=float(pair_iou.mean()) if n_matched else float("nan"),
                      found=rows[ok].astype(np.int64), true=cols[ok].astype(np.int64), iou=pair_iou,
                      shift=(int(shift[0]), int(shift[1])))


def matched_trace_r(found_traces: np.ndarray, true_traces: np.ndarray, match: TruthMatch) -> np.ndarray:
    """Pearson r of each matched pair's traces (NaN where a trace is constant)."""
    out = np.full(match.n_matched, np.nan)
    for i, (f, t) in enumerate(zip(match.found, match.true)):
        a = np.asarray(found_traces[f], np.float64)
        b = np.asarray(true_traces[t], np.float64)
        if a.std() > 0 and b.std() > 0:
            out[i] = float(np.corrcoef(a, b)[0, 1])
    return out


def offset_aligned_rmse(estimated_displacements, true_displacements) -> float:
    """RMSE (px, over frames and both axes) of two (T, 2) displacement trajectories after
    removing their constant per-axis offset (the template's place is not an error)."""
    e = np.asarray(estimated_displacements, dtype=np.float64)
    t = np.asarray(true_displacements, dtype=np.float64)
    diff = e - t
    diff -= diff.mean(axis=0, keepdims=True)
    return float(np.sqrt(np.mean(diff ** 2)))
