"""Greedy initialisation from correlation/PNR seeds (CNMF-E), in streaming passes.

For one seed pixel, CNMF-E (``extract_ac`` in CaImAn) looks at a box of
``(2 gSiz + 1)^2`` pixels around it and

1. correlates every pixel's filtered trace with the seed's: pixels above 0.9
   are the neuron's core, pixels below 0.3 are background;
2. takes the neuron's trace ``c`` as the mean normalised filtered trace of the
   core, and a background trace as the median raw value of the background pixels
   (here of an even sample of at most 256 of them);
3. regresses the raw data of the box on ``[c, background, 1]``; the coefficient
   of ``c`` is the footprint ``a`` (clipped at 0, kept connected).

All of this is linear statistics over time, so it is accumulated over frame
blocks: one pass for the seed-box correlations, one for the traces and the
regression sums. CaImAn processes seeds one at a time and subtracts each neuron
before looking at the next; here all seeds of a round are processed together,
seeds that turn out to describe the same neuron are deduplicated, and a second
round searches the residual of the fitted model (CaImAn's ``init_iter=2``)
for neurons hidden by brighter neighbours.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from scipy import ndimage
from scipy.spatial import cKDTree

from .boxsums import BoxSums
from .oasis import noise_mad
from .summary import FilteredStats, median_last, spatial_filter

log = logging.getLogger(__name__)

__all__ = ["InitResult", "extract_seeds"]

MIN_CORR_NEURON = 0.9
MAX_CORR_BG = 0.3
MIN_PIXELS = 3
FOOTPRINT_THRESHOLD = 0.1
DUPLICATE_TRACE_CORR = 0.8
#: background pixels whose median is a seed's background trace: an even sample of the box's
#: pixels uncorrelated with the seed (the median of 256 pixels is within a tenth of a pixel's
#: noise of the median of all of them, at a sixth of the cost)
MAX_BACKGROUND_PIXELS = 256
#: threads for the per-seed background medians (NumPy's partition runs without the GIL)
MEDIAN_THREADS = max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class InitResult:
    """Components found from seeds, on the grid and time base of the input blocks.

    Attributes
    ----------
    A : scipy.sparse.csc_matrix, shape (h*w, N)
        Footprints (max 1), C-order pixels.
    C : ndarray, shape (N, T')
        Traces (baseline removed, >= 0).
    seeds : ndarray, shape (N, 2)
        Seed pixel (row, column) of each component.
    scores : ndarray, shape (N,)
        ``corr * pnr`` at the seed.
    n_candidates : int
        Seeds examined (before rejections and deduplication).
    """

    A: sp.csc_matrix
    C: np.ndarray
    seeds: np.ndarray
    scores: np.ndarray
    n_candidates: int


def _boxes(seeds: np.ndarray, half: tuple[int, int], dims: tuple[int, int]) -> np.ndarray:
    H, W = dims
    y, x = seeds[:, 0].astype(int), seeds[:, 1].astype(int)
    return np.column_stack([np.maximum(0, y - half[0]), np.minimum(H, y + half[0] + 1),
                            np.maximum(0, x - half[1]), np.minimum(W, x + half[1] + 1)])


def extract_seeds(blocks: Iterable[tuple[int, np.ndarray]], stats: FilteredStats, seeds: np.ndarray,
                  *, gSig: Sequence[int], gSiz: Sequence[int], center_psf: bool = True,
                  min_pixels: int = MIN_PIXELS) -> InitResult:
    """Footprints and traces for a batch of seeds (two streaming passes).

    Parameters
    ----------
    blocks : re-iterable of (t0, block)
        The movie (or residual movie) on the initialisation grid, float32 blocks.
    stats : FilteredStats
        Summary statistics of the same movie (mean and norm of the filtered movie).
    seeds : ndarray, shape (N, 3)
        ``(y, x, score)`` from :func:`~ace_neuro.stages.cnmfe.summary.find_seeds`.
    gSig, gSiz : (int, int)
        Filter width and neuron diameter on this grid.
    center_psf : bool
    min_pixels : int
        Footprints with fewer non-zero pixels are discarded.

    Returns
    -------
    InitResult
    """
    dims = stats.mean.shape
    P = dims[0] * dims[1]
    T = stats.n_frames
    seeds = np.asarray(seeds, dtype=float).reshape(-1, 3)
    N = len(seeds)
    empty = InitResult(sp.csc_matrix((P, 0), dtype=np.float32), np.zeros((0, T), np.float32),
                       np.zeros((0, 2), int), np.zeros(0), N)
    if N == 0:
        return empty
    sy, sx = seeds[:, 0].astype(int), seeds[:, 1].astype(int)
    half = (int(gSiz[0]), int(gSiz[1]))
    boxes = _boxes(seeds, half, dims)
    mean = stats.mean
    norm = np.where(stats.norm > 0, stats.norm, 1.0).astype(np.float32)

    # pass 1: correlation of each box with its seed's filtered trace -----------------------
    sums = BoxSums(boxes)
    cross = sums.zeros()
    seed_tr = np.zeros((N, T), np.float32)
    for t0, block in blocks:
        G = spatial_filter(block, gSig, center_psf=center_psf)
        G -= mean
        g0 = G[:, sy, sx]  # (B, N)
        seed_tr[:, t0:t0 + G.shape[0]] = g0.T
        sums.add(cross, g0.T, G)
    core_w, bg_idx, ok = [], [], np.ones(N, dtype=bool)
    for i, (r0, r1, c0, c1) in enumerate(boxes):
        corr = cross[i] / (norm[r0:r1, c0:c1] * norm[sy[i], sx[i]])
        core = corr > MIN_CORR_NEURON
        d = np.diff(seed_tr[i])
        # CNMF-E's sanity check: the seed must show sharp rises, not only slow drifts
        if not core.any() or d.size < 2 or d.max() < 3 * d.std():
            ok[i] = False
        w = np.where(core, 1.0 / norm[r0:r1, c0:c1], 0.0) / max(int(core.sum()), 1)
        core_w.append(_box_image(w, boxes[i], dims))
        bg_idx.append(_spread_sample(_box_pixels(corr < MAX_CORR_BG, boxes[i], dims), MAX_BACKGROUND_PIXELS))
    idx_ok = np.flatnonzero(ok)
    if idx_ok.size == 0:
        return empty
    core_mat = sp.vstack(core_w).tocsr().astype(np.float32)

    # pass 2: neuron and background traces, regression sums -------------------------------
    ci = np.zeros((N, T), np.float32)
    ybg = np.zeros((N, T), np.float32)
    xty_c, xty_b = sums.zeros(), sums.zeros()
    chunks = [[bg_idx[i] for i in part] for part in np.array_split(idx_ok, MEDIAN_THREADS) if part.size]
    with ThreadPoolExecutor(max_workers=MEDIAN_THREADS, thread_name_prefix="cnmfe-init") as pool:
        for t0, block in blocks:
            G = spatial_filter(block, gSig, center_psf=center_psf)
            G -= mean
            B = block.shape[0]
            sl = slice(t0, t0 + B)
            ci[:, sl] = core_mat @ G.reshape(B, -1).T
            flat = block.reshape(B, -1)
            ybg[idx_ok, sl] = np.concatenate(list(pool.map(partial(_background_traces, flat), chunks)))
            sums.add_several([xty_c, xty_b], [ci[:, sl], ybg[:, sl]], block, only=idx_ok)

    raw_sum = stats.raw_sum
    footprints: list[np.ndarray] = []
    traces: list[np.ndarray] = []
    kept: list[int] = []
    for i in idx_ok:
        r0, r1, c0, c1 = boxes[i]
        X = np.stack([ci[i].astype(np.float64), ybg[i].astype(np.float64), np.ones(T)])
        XtX = X @ X.T
        XtY = np.stack([xty_c[i].ravel(), xty_b[i].ravel(), raw_sum[r0:r1, c0:c1].ravel()])
        try:
            coef = np.linalg.solve(XtX + 1e-9 * np.trace(XtX) * np.eye(3), XtY)
        except np.linalg.LinAlgError:
            coef = np.linalg.lstsq(XtX, XtY, rcond=None)[0]
        a = coef[0].reshape(r1 - r0, c1 - c0)
        a = _clean_footprint(a, (sy[i] - r0, sx[i] - c0))
        if a is None or np.count_nonzero(a) < min_pixels:
            continue
        c = ci[i].astype(np.float64)
        c = c - _trace_baseline(c)
        scale = float(a.max())
        full = np.zeros(dims, np.float32)
        full[r0:r1, c0:c1] = a / scale
        footprints.append(full.ravel())
        traces.append(np.maximum(c * scale, 0.0).astype(np.float32))
        kept.append(i)
    if not kept:
        return empty
    kept_arr = np.array(kept)
    A = sp.csc_matrix(np.stack(footprints, axis=1))
    C = np.stack(traces)
    keep = _deduplicate(A, C, seeds[kept_arr, :2], seeds[kept_arr, 2], gSiz)
    log.debug("init: %d seeds -> %d footprints -> %d after deduplication", N, len(kept), int(keep.sum()))
    return InitResult(A=A[:, np.flatnonzero(keep)].tocsc(), C=C[keep],
                      seeds=seeds[kept_arr[keep], :2].astype(int), scores=seeds[kept_arr[keep], 2], n_candidates=N)


def _box_image(values: np.ndarray, box, dims: tuple[int, int]) -> sp.csr_matrix:
    """A box's values as one sparse row over the whole (C-order) frame."""
    nz = values != 0
    cols = _box_pixels(nz, box, dims)
    return sp.csr_matrix((values[nz], (np.zeros(len(cols), int), cols)), shape=(1, dims[0] * dims[1]))


def _box_pixels(mask: np.ndarray, box, dims: tuple[int, int]) -> np.ndarray:
    """C-order frame indices of the pixels of a box's ``mask``."""
    yy, xx = np.nonzero(mask)
    return (yy + box[0]) * dims[1] + xx + box[2]


def _spread_sample(pixels: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` of ``pixels`` (sorted frame indices), evenly spread over the list."""
    if pixels.size <= n:
        return pixels
    return pixels[np.linspace(0, pixels.size - 1, n).round().astype(int)]


def _background_traces(flat: np.ndarray, pixel_sets: list[np.ndarray]) -> np.ndarray:
    """Median over each set of pixels of every frame of a (B, P) block: (n_sets, B); ones for an
    empty set."""
    out = np.ones((len(pixel_sets), flat.shape[0]), np.float32)
    for j, pixels in enumerate(pixel_sets):
        if pixels.size:
            out[j] = median_last(flat[:, pixels])
    return out


def _clean_footprint(a: np.ndarray, centre: tuple[int, int]) -> np.ndarray | None:
    """Clip at 0, drop values under 10% of the max, keep the connected piece with the seed."""
    a = np.where(np.isfinite(a), a, 0.0)
    a = np.maximum(a, 0.0)
    cy, cx = centre
    y0, y1 = max(0, cy - 1), min(a.shape[0], cy + 2)
    x0, x1 = max(0, cx - 1), min(a.shape[1], cx + 2)
    if a.max() <= 0 or a[y0:y1, x0:x1].max() <= 0:
        return None
    a[a < FOOTPRINT_THRESHOLD * a.max()] = 0.0
    labels, n = ndimage.label(a > 0, structure=np.ones((3, 3)))
    local = labels[y0:y1, x0:x1]
    lab = np.bincount(local[local > 0]).argmax() if np.any(local > 0) else 0
    if lab == 0:
        return None
    return np.where(labels == lab, a, 0.0)


def _trace_baseline(c: np.ndarray) -> float:
    """Baseline of an initial trace: median of slowly rising points (as CNMF-E)."""
    sn = float(noise_mad(c)) if c.size >= 4 else float(np.std(c))
    d = np.concatenate([[-1.0], np.diff(c)])
    sel = (d >= 0) & (d < sn)
    return float(np.median(c[sel])) if sel.any() else float(np.median(c))


def _deduplicate(A: sp.csc_matrix, C: np.ndarray, yx: np.ndarray, score: np.ndarray,
                 gSiz: Sequence[int]) -> np.ndarray:
    """Drop lower-scoring seeds that found the same neuron as a higher-scoring one.

    Two results within one neuron diameter are the same neuron when their
    traces correlate above 0.8 and their footprints have cosine similarity
    above 0.5.
    """
    N = A.shape[1]
    keep = np.ones(N, dtype=bool)
    if N < 2:
        return keep
    tree = cKDTree(yx)
    pairs = tree.query_pairs(r=float(max(gSiz)))
    if not pairs:
        return keep
    Cc = C - C.mean(axis=1, keepdims=True)
    nrm = np.linalg.norm(Cc, axis=1)
    nrm[nrm == 0] = 1.0
    An = A.multiply(1.0 / np.sqrt(np.asarray(A.multiply(A).sum(axis=0))).clip(1e-12)).tocsc()
    order = np.argsort(-score, kind="stable")
    rank = np.empty(N, int)
    rank[order] = np.arange(N)
    for i, j in sorted(pairs, key=lambda p: min(rank[p[0]], rank[p[1]])):
        if not (keep[i] and keep[j]):
            continue
        rc = float(Cc[i] @ Cc[j]) / (nrm[i] * nrm[j])
        if rc < DUPLICATE_TRACE_CORR:
            continue
        cos = float(An[:, i].multiply(An[:, j]).sum())
        if cos < 0.5:
            continue
        drop = j if rank[i] < rank[j] else i
        keep[drop] = False
    return keep
