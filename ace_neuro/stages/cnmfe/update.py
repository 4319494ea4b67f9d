"""Streaming passes and the alternating spatial/temporal updates of CNMF-E.

Each pass reads the movie block by block and accumulates small products:

* :func:`fit_ring_model` - sufficient statistics of the ring regression on ``Y - A C``;
* :func:`project_data` - ``A' (Y - B)`` (K x T), for the temporal update;
* :func:`spatial_products` - ``(Y - B) c_k'`` on each component's search region.

The ring background ``B = b0 + F (Y - A C - b0)`` is affine in the data, so the last two
never compute it frame by frame: they project the raw blocks on fixed sparse matrices and
apply the ring operator ``F`` to the accumulated products once (exactly the same result).

The updates themselves work on those products in memory (K x K, K x T and
small per-component boxes):

* temporal: exact demixing by the K x K overlap matrix, deconvolution with
  OASIS (AR(p), ``decay_time``; non-negativity and spikes), then a
  block-coordinate (HALS) refinement given the neighbours' denoised traces;
* spatial: HALS on each footprint restricted to its search region (its
  support dilated by ``gSig`` pixels), non-negative; footprints are then
  cleaned (values under 10% of the maximum removed, one connected piece) and
  scaled to a maximum of 1 (traces carry the amplitude, in movie units at the
  footprint's peak).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import scipy.sparse as sp
from scipy import ndimage
from scipy.sparse.linalg import splu

from .background import N_HARMONICS, RingAccumulator, RingFilter, RingModel
from .boxsums import BoxSums
from .stream import downsample_space

log = logging.getLogger(__name__)

__all__ = [
    "Region", "pixel_region", "ac_block", "fit_ring_model", "project_data", "spatial_products", "search_regions",
    "temporal_update", "TemporalFit", "spatial_update", "overlap_groups",
]

# Values under this share of a footprint's maximum are dropped after the spatial update. For a
# blob-like footprint the light outside its contour at level f is about f of the total, so 2 %
# keeps ~98 % of it: blurred (out-of-focus) neurons keep the skirt that 10 % cut away (a third
# of their area). (CaImAn keeps 99.99 % of the energy.)
FOOTPRINT_THRESHOLD = 0.02


def ac_block(A: sp.spmatrix, C_block: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """``A C`` for a block of frames, shape (B, H, W) float32.

    One sparse mat-vec per frame writes each frame contiguously (a single
    (pixels x frames) product would need a large, cache-unfriendly transpose).
    Pass ``A`` in CSR form to avoid a conversion per call.
    """
    B = C_block.shape[1]
    H, W = dims
    out = np.zeros((B, H * W), np.float32)
    if A.shape[1] == 0 or B == 0:
        return out.reshape((B, H, W))
    Ar = A if sp.isspmatrix_csr(A) or isinstance(A, sp.csr_array) else A.tocsr()
    Ar = Ar.astype(np.float32, copy=False)
    Cb = np.asarray(C_block, dtype=np.float32)
    for t in range(B):
        out[t] = Ar @ Cb[:, t]
    return out.reshape((B, H, W))


def fit_ring_model(source: Iterable[tuple[int, np.ndarray]], A: sp.csc_matrix, C: np.ndarray, *,
                   dims: tuple[int, int], radius: int, ssub_B: int,
                   n_harmonics: int = N_HARMONICS, tsub: int = 1) -> RingModel:
    """Estimate ``b0`` and the ring weights from ``X = Y - A C`` in one pass.

    Parameters
    ----------
    source : re-iterable of (t0, block)
        Full-resolution frames.
    A : sparse (H*W, K); C : ndarray (K, T)
    dims : (H, W)
    radius : int
        Ring radius on the ``ssub_B`` grid.
    ssub_B : int
    tsub : int
        Frames averaged in time before accumulating the ring statistics
        (speeds up the pass; the background is slow).
    """
    low_dims = downsample_space(np.zeros((1,) + tuple(dims), np.float32), ssub_B).shape[1:]
    ring = RingFilter(low_dims, radius, n_harmonics)
    acc = RingAccumulator(ring)
    y_sum = np.zeros(dims)
    ref = None
    T = 0
    Ar = A.tocsr()
    for t0, block in source:
        B = block.shape[0]
        y_sum += block.sum(axis=0, dtype=np.float64)
        y, c = block, C[:, t0:t0 + B]
        if tsub > 1 and B >= tsub:
            # averaging first is exact (Y - A C is linear) and halves the cost of what follows
            n = (B // tsub) * tsub
            y = block[:n].reshape(n // tsub, tsub, *block.shape[1:]).mean(axis=1, dtype=np.float32)
            c = c[:, :n].reshape(c.shape[0], n // tsub, tsub).mean(axis=2, dtype=np.float32)
        xl = downsample_space(y - ac_block(Ar, c, dims), ssub_B)
        if ref is None:
            ref = xl.mean(axis=0)
        acc.add(xl - ref)
        T += B
    coef = acc.solve()
    c_mean = C.mean(axis=1) if C.shape[1] else np.zeros(C.shape[0])
    b0 = y_sum / max(T, 1) - np.asarray(A @ c_mean).reshape(dims)
    return RingModel(dims=tuple(dims), ssub_B=int(ssub_B), radius=int(radius), n_harmonics=int(n_harmonics),
                     coef=coef, b0=b0.astype(np.float32))


def project_data(source, A: sp.csc_matrix, C: np.ndarray, ring: RingModel, dims) -> np.ndarray:
    """``A' (Y - B)``, shape (K, T) float32, in one pass.

    The ring model is affine: ``Y - B = (Y - b0) - F (Y - b0) + F A C`` with the linear operator
    ``F`` (:meth:`RingModel.operator`). So ``A' (Y - B) = (A - F'A)' (Y - b0) + (F'A)' A C``: each
    block costs one sparse product with the fixed matrix ``A - F'A`` and no background is
    computed frame by frame.
    """
    K, T = C.shape
    out = np.zeros((K, T), np.float32)
    if K == 0:
        return out
    A = sp.csc_matrix(A, dtype=np.float32)
    FtA = ring.adjoint(A)
    Mt = (A - FtA).tocsr().T  # CSC: its product with a block runs twice as fast as CSR's
    model = (FtA.T @ A).tocsr()
    b0 = ring.b0.ravel()
    for t0, block in source:
        B = block.shape[0]
        y = np.asarray(block, np.float32).reshape(B, -1) - b0  # small numbers: no float32 cancellation
        proj = np.asarray(Mt @ y.T)
        proj += model @ C[:, t0:t0 + B]
        out[:, t0:t0 + B] = proj
    return out


@dataclass(frozen=True)
class Region:
    """A component's search region: box ``[r0, r1) x [c0, c1)`` and boolean mask in it."""

    r0: int
    r1: int
    c0: int
    c1: int
    mask: np.ndarray

    def box(self, img: np.ndarray) -> np.ndarray:
        return img[..., self.r0:self.r1, self.c0:self.c1]


def pixel_region(rows: np.ndarray, dims: tuple[int, int], radius: int = 0) -> Region:
    """The region of the pixels ``rows`` (C-order indices) dilated by a disk of ``radius`` pixels."""
    H, W = dims
    if rows.size == 0:
        return Region(0, 0, 0, 0, np.zeros((0, 0), bool))
    y, x = np.divmod(rows, W)
    r0, r1 = max(0, int(y.min()) - radius), min(H, int(y.max()) + radius + 1)
    c0, c1 = max(0, int(x.min()) - radius), min(W, int(x.max()) + radius + 1)
    m = np.zeros((r1 - r0, c1 - c0), bool)
    m[y - r0, x - c0] = True
    if radius > 0:
        yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
        m = ndimage.binary_dilation(m, structure=(yy ** 2 + xx ** 2) <= radius ** 2)
    return Region(r0, r1, c0, c1, m)


def search_regions(A: sp.csc_matrix, dims: tuple[int, int], radius: int) -> list[Region]:
    """Support of each footprint dilated by a disk of ``radius`` pixels."""
    A = A.tocsc()
    regions = []
    for k in range(A.shape[1]):
        rows = A.indices[A.indptr[k]:A.indptr[k + 1]]
        vals = A.data[A.indptr[k]:A.indptr[k + 1]]
        regions.append(pixel_region(rows[vals > 0], dims, radius))
    return regions


def spatial_products(source, A: sp.csc_matrix, C: np.ndarray, ring: RingModel, dims,
                     regions: list[Region], *, weights: np.ndarray | None = None,
                     batch: int = 16) -> list[np.ndarray]:
    """``sum_t (Y - B)[t, region_k] * w_k(t)`` for every component (one pass).

    ``B`` is the background of the model ``A C``; the weights ``w`` are the traces ``C`` unless
    given (shape (K, T), e.g. a mask of frames to average).

    With ``M_k = sum_t (Y_t - b0) w_k(t)`` and ``q_k = C w_k'``, the ring model's affine form gives
    ``sum_t (Y - B)_t w_k(t) = M_k - F (M_k - A q_k)``. ``F`` needs ``M_k`` only on the ring grid
    and only within a ring's reach of the region, so the pass accumulates ``M_k`` on the region and
    its down-sampled counterpart on that margin; ``F`` is applied once per component afterwards,
    not to every frame.
    """
    if not regions:
        return []
    s = ring.ssub_B
    low_dims = ring.coef.shape[1:]
    reach = ring.radius + 3  # ring, bilinear neighbours and the tile of each grid pixel
    low_boxes = [_low_box(r, s, reach, low_dims) if r.mask.size else (0, 0, 0, 0) for r in regions]
    boxes = BoxSums([(r.r0, r.r1, r.c0, r.c1) for r in regions])
    low_sums = BoxSums(low_boxes)
    out, low = boxes.zeros(), low_sums.zeros()
    C = np.asarray(C, np.float32)
    weights = C if weights is None else np.asarray(weights, np.float32)
    for t0, block in source:
        Cb = weights[:, t0:t0 + block.shape[0]]
        if not Cb.any():
            continue
        y = np.asarray(block, np.float32) - ring.b0  # small numbers: no float32 cancellation
        boxes.add(out, Cb, y)
        low_sums.add(low, Cb, downsample_space(y, s))
    Q = (C.astype(np.float64) @ weights.T.astype(np.float64)).astype(np.float32)
    A = sp.csc_matrix(A, dtype=np.float32)
    live = [k for k, r in enumerate(regions) if r.mask.size]
    for i in range(0, len(live), batch):
        ks = live[i:i + batch]
        aq = np.asarray(A @ Q[:, ks]).T.reshape((len(ks),) + tuple(dims))
        z = -downsample_space(aq, s)
        for j, k in enumerate(ks):
            b = low_boxes[k]
            z[j, b[0]:b[1], b[2]:b[3]] += low[k]
        fl = ring.operator_low(z)
        for j, k in enumerate(ks):
            out[k] -= regions[k].box(fl[j])
    return out


def _low_box(r: Region, s: int, reach: int, low_dims) -> tuple[int, int, int, int]:
    """Box on the ring grid holding every grid pixel that the ring model of region ``r`` reads."""
    h, w = low_dims
    return (max(0, r.r0 // s - reach), min(h, -(-r.r1 // s) + reach),
            max(0, r.c0 // s - reach), min(w, -(-r.c1 // s) + reach))


def overlap_groups(A: sp.csc_matrix) -> list[np.ndarray]:
    """Greedy colouring: groups of components whose footprints do not overlap."""
    K = A.shape[1]
    if K == 0:
        return []
    B = (A > 0).astype(np.float32)
    ov = (B.T @ B).tocsr()
    color = -np.ones(K, int)
    degree = np.diff(ov.indptr)
    for k in np.argsort(-degree, kind="stable"):
        nbr = ov.indices[ov.indptr[k]:ov.indptr[k + 1]]
        used = set(color[nbr][color[nbr] >= 0].tolist())
        c = 0
        while c in used:
            c += 1
        color[k] = c
    return [np.flatnonzero(color == c) for c in range(color.max() + 1)]


@dataclass(frozen=True)
class TemporalFit:
    """Output of :func:`temporal_update` (all (K, T) float32 except per-component vectors)."""

    C: np.ndarray
    S: np.ndarray
    YrA: np.ndarray
    baseline: np.ndarray
    sn: np.ndarray
    g: np.ndarray


def temporal_update(AtY: np.ndarray, A: sp.csc_matrix, C: np.ndarray | None = None, *,
                    deconv: Callable[[np.ndarray], object], n_refine: int = 1) -> TemporalFit:
    """Demix and deconvolve all traces.

    1. Exact unconstrained demixing ``C_ls = (A'A)^-1 A'(Y - B)`` (sparse LU of
       the K x K overlap matrix), deconvolved with OASIS: a first denoised ``C``.
    2. ``n_refine`` block-coordinate (HALS) steps: each component's raw trace
       is recomputed given its neighbours' *denoised* traces,
       ``raw_k = C_k + (A'(Y - B) - A'A C)_k / (A'A)_kk``, and deconvolved again.
       Conditioning on denoised neighbours gives cleaner raw traces for
       overlapping neurons than the exact demixing alone.

    Every deconvolution call handles all K traces at once (the OASIS loop is
    vectorised over traces), so the cost does not grow with the number of
    overlap groups.

    Parameters
    ----------
    AtY : ndarray, shape (K, T)
        ``A' (Y - B)`` from :func:`project_data`.
    A : sparse (P, K)
    C : ndarray, shape (K, T), optional
        Unused (kept for call symmetry with the spatial update).
    deconv : callable
        Maps raw traces (K, T) to a :class:`~ace_neuro.stages.cnmfe.oasis.Deconvolution`.
    n_refine : int
        Number of refinement steps.
    """
    K, T = AtY.shape
    if K == 0:
        z = np.zeros((0, T), np.float32)
        return TemporalFit(z, z.copy(), z.copy(), np.zeros(0), np.zeros(0), np.zeros((0, 2)))
    AtA = (A.T @ A).tocsc().astype(np.float64)
    diag = AtA.diagonal().copy()
    diag[diag <= 0] = 1.0
    ridge = sp.diags(1e-6 * diag)
    try:
        lu = splu((AtA + ridge).tocsc())
        C_ls = lu.solve(np.ascontiguousarray(AtY, dtype=np.float64))
    except RuntimeError:
        C_ls = AtY / diag[:, None]
    d = deconv(C_ls)
    del C_ls
    AtA32 = AtA.tocsr().astype(np.float32)
    diag32 = diag.astype(np.float32)[:, None]
    for _ in range(max(0, n_refine)):
        raw = d.c + (AtY - AtA32 @ d.c) / diag32
        d = deconv(raw)
        del raw
    YrA = (AtY - AtA32 @ d.c) / diag32
    return TemporalFit(C=d.c, S=d.s, YrA=YrA.astype(np.float32), baseline=d.baseline, sn=d.sn, g=d.g)


def spatial_update(A: sp.csc_matrix, C: np.ndarray, YC: list[np.ndarray], regions: list[Region],
                   dims: tuple[int, int], *, n_sweeps: int = 10,
                   border_pix: int = 0) -> tuple[sp.csc_matrix, np.ndarray]:
    """HALS for the footprints on their search regions, then clean and rescale.

    Returns the new footprints (max 1) and the traces rescaled to keep ``A C``;
    components whose footprint vanished are returned as empty columns (the caller
    drops them).
    """
    K = A.shape[1]
    H, W = dims
    CC = (C.astype(np.float64) @ C.T.astype(np.float64))
    Acsc = A.tocsc()
    boxes = []
    for k, r in enumerate(regions):
        full_k = np.asarray(Acsc[:, k].todense()).reshape(dims)
        boxes.append(r.box(full_k).astype(np.float64) * r.mask if r.mask.size else np.zeros((0, 0)))
    nbrs = _region_neighbours(regions)
    for _ in range(n_sweeps):
        for k, r in enumerate(regions):
            if not r.mask.size or CC[k, k] <= 0:
                continue
            acc = YC[k].copy()
            for j in nbrs[k]:
                rj = regions[j]
                y0, y1 = max(r.r0, rj.r0), min(r.r1, rj.r1)
                x0, x1 = max(r.c0, rj.c0), min(r.c1, rj.c1)
                if y0 >= y1 or x0 >= x1 or CC[j, k] == 0:
                    continue
                acc[y0 - r.r0:y1 - r.r0, x0 - r.c0:x1 - r.c0] -= CC[j, k] * boxes[j][y0 - rj.r0:y1 - rj.r0,
                                                                                      x0 - rj.c0:x1 - rj.c0]
            boxes[k] = np.maximum(boxes[k] + acc / CC[k, k], 0.0) * r.mask
    cols, rows, vals = [], [], []
    scale = np.zeros(K)
    for k, r in enumerate(regions):
        if not r.mask.size:
            continue
        a = _clean(boxes[k])
        if border_pix > 0:
            a = _zero_border(a, r, dims, border_pix)
        m = a.max() if a.size else 0.0
        if m <= 0:
            continue
        yy, xx = np.nonzero(a)
        rows.append((yy + r.r0) * W + (xx + r.c0))
        vals.append(a[yy, xx] / m)
        cols.append(np.full(len(yy), k))
        scale[k] = m
    if rows:
        rows_a, cols_a, vals_a = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    else:
        rows_a = cols_a = np.zeros(0, int)
        vals_a = np.zeros(0)
    A_new = sp.csc_matrix((vals_a.astype(np.float32), (rows_a, cols_a)), shape=(H * W, K))
    C_new = (C * scale[:, None]).astype(np.float32)
    return A_new, C_new


def _region_neighbours(regions: list[Region]) -> list[np.ndarray]:
    """For each region, the regions whose boxes intersect it (itself included)."""
    if not regions:
        return []
    box = np.array([(r.r0, r.r1, r.c0, r.c1) for r in regions])
    out = []
    for k in range(len(regions)):
        inter = ((box[:, 0] < box[k, 1]) & (box[:, 1] > box[k, 0]) &
                 (box[:, 2] < box[k, 3]) & (box[:, 3] > box[k, 2]))
        out.append(np.flatnonzero(inter))
    return out


def _clean(a: np.ndarray) -> np.ndarray:
    """Drop values under ``FOOTPRINT_THRESHOLD`` of the max; keep the connected piece holding the max."""
    if a.size == 0 or a.max() <= 0:
        return np.zeros_like(a)
    a = np.where(a >= FOOTPRINT_THRESHOLD * a.max(), a, 0.0)
    labels, n = ndimage.label(a > 0, structure=np.ones((3, 3)))
    if n > 1:
        peak = np.unravel_index(int(np.argmax(a)), a.shape)
        a = np.where(labels == labels[peak], a, 0.0)
    return a


def _zero_border(a: np.ndarray, r: Region, dims, border_pix: int) -> np.ndarray:
    H, W = dims
    yy = np.arange(r.r0, r.r1)[:, None]
    xx = np.arange(r.c0, r.c1)[None, :]
    inside = (yy >= border_pix) & (yy < H - border_pix) & (xx >= border_pix) & (xx < W - border_pix)
    return np.where(inside, a, 0.0)
