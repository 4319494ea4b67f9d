"""Splitting components that hold two neurons.

In dense, blurred 1-photon fields two neurons a few pixels apart show as one blob in the
correlation and PNR images: the greedy initialisation gives them one seed, one footprint covering
both and one trace mixing both. No spatial update can take them apart (the footprint is fitted
to the mixed trace), and the residual search does not see the second neuron either, because the
component already explains most of its light.

Time can. Where a component holds one neuron, the pixels of its footprint vary together: the
covariance over time of the data there, once the background and every *other* component are
removed, ``z_t = (Y - B - sum_{j != k} a_j c_j)_t``, is one outer product ``var * a a'`` plus
noise. Two neurons firing independently add a second, and the second eigenvalue rises above
the noise floor (the Marchenko-Pastur edge ``sigma^2 (1 + sqrt(n / T))^2`` for ``n`` pixels and
``T`` frames). In the plane of the two leading eigenvectors every pixel is then a non-negative
mixture of the two neurons, so the pixels fill a cone whose edges are the pixels that belong to
one neuron only; expressing every pixel in the basis of the two edges gives the two footprints
(the pure-pixel idea of separable NMF).

A component is split only if the second eigenvalue clears the noise edge by a margin, the two
footprints differ (cosine below ``MAX_SPLIT_COSINE``), both carry a real share of the energy and
their peaks lie apart. The component's pixels are then shared between the two neurons in
proportion to their footprints, the second neuron is appended as a new component with the
component's trace for now (so ``A C`` is unchanged), and the engine's next temporal update
demixes the two traces. Two halves of one neuron would have the same trace, so merging
(``merge_thr``) would join them again: a wrong split costs time, not a neuron.

The statistics are gathered while the residual search streams the residual movie, from at most
``MAX_FRAMES`` frames (whole blocks, spread over the recording), so no pass is added.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

log = logging.getLogger(__name__)

CORE_FRACTION = 0.2  # pixels above this share of a footprint's maximum enter its covariance
MAX_PIXELS = 160  # ... at most this many, evenly spread: the covariance is MAX_PIXELS^2
MAX_FRAMES = 4000  # frames (on the initialisation grid) that enter the covariances
EDGE_MARGIN = 2.0  # the second eigenvalue must exceed the noise edge by this factor
EDGE_PERCENTILE = 3.0  # the cone's edges: these percentiles of the pixels' angles
MAX_SPLIT_COSINE = 0.8  # the two footprints must differ at least this much
MIN_ENERGY_SHARE = 0.15  # each footprint's share of the pair's energy
MIN_PEAK_DISTANCE = 2.0  # px between the two peaks


@dataclass(frozen=True)
class Split:
    """A component found to hold two neurons.

    Attributes
    ----------
    component : int
        Its column in ``A``.
    pixels : ndarray of int
        Pixel indices (on the grid the statistics were gathered on) of the two footprints.
    kept, other : ndarray, float
        The footprint that stays with the component and the other neuron's, on ``pixels``.
    seed : (int, int)
        ``(y, x)`` of the other neuron's peak, on the same grid (for reports and tests).
    """

    component: int
    pixels: np.ndarray
    kept: np.ndarray
    other: np.ndarray
    seed: tuple[int, int]


class ComponentCovariances:
    """Accumulates, per component, the covariance of ``Y - B - sum_{j != k} a_j c_j`` on its core.

    Parameters
    ----------
    A : sparse matrix, shape (h*w, K)
        Footprints on the grid of the blocks that will be added.
    C : ndarray, shape (K, T)
        Traces at the blocks' frame rate.
    dims : (int, int)
        ``(h, w)`` of the blocks.
    n_frames : int
        Frames the source will yield (to spread ``MAX_FRAMES`` over the recording).
    """

    def __init__(self, A, C: np.ndarray, dims: tuple[int, int], n_frames: int):
        A = sp.csc_matrix(A)
        self.dims = (int(dims[0]), int(dims[1]))
        self.C = np.asarray(C, dtype=np.float32)
        self.stride = max(1, int(np.ceil(int(n_frames) / MAX_FRAMES)))
        self.pixels, self.weights = [], []
        for k in range(A.shape[1]):
            idx = A.indices[A.indptr[k]:A.indptr[k + 1]]
            val = A.data[A.indptr[k]:A.indptr[k + 1]].astype(np.float32)
            core = val >= CORE_FRACTION * val.max() if val.size else np.zeros(0, bool)
            idx, val = idx[core], val[core]
            if idx.size > MAX_PIXELS:  # an even subsample keeps the core's edges, where the cone's edges are
                pick = np.linspace(0, idx.size - 1, MAX_PIXELS).round().astype(int)
                idx, val = idx[pick], val[pick]
            self.pixels.append(idx)
            self.weights.append(val)
        self.s1 = [np.zeros(len(p)) for p in self.pixels]
        self.s2 = [np.zeros((len(p), len(p))) for p in self.pixels]
        self.n = 0
        self._block = 0

    def add(self, t0: int, residual: np.ndarray) -> None:
        """Add one block of the residual movie ``Y - B - A C``, shape (B, h, w)."""
        take = self._block % self.stride == 0
        self._block += 1
        if not take:
            return
        B = residual.shape[0]
        flat = residual.reshape(B, -1)
        cb = self.C[:, t0:t0 + B]
        for k, idx in enumerate(self.pixels):
            if idx.size < 3:
                continue
            z = flat[:, idx]
            z += np.outer(cb[k], self.weights[k])
            self.s1[k] += z.sum(axis=0, dtype=np.float64)
            self.s2[k] += z.T @ z  # float32 product per block, float64 running sum
        self.n += B

    def splits(self) -> list[Split]:
        """Components whose covariance shows two neurons (see the module docstring)."""
        out = []
        if self.n < 2:
            return out
        for k, idx in enumerate(self.pixels):
            if idx.size < 8:
                continue
            mean = self.s1[k] / self.n
            cov = self.s2[k] / self.n - np.outer(mean, mean)
            found = _two_sources(cov, idx, self.dims, self.n)
            if found is not None:
                kept, other, seed = found
                if self.weights[k] @ kept < self.weights[k] @ other:
                    kept, other = other, kept
                    seed = _peak(other, idx, self.dims)
                out.append(Split(k, idx, kept, other, seed))
        return out


class CovarianceTap:
    """Re-iterable source that feeds the first pass of its blocks to a :class:`ComponentCovariances`."""

    def __init__(self, source, covariances: ComponentCovariances):
        self.source = source
        self.covariances = covariances
        self._fed = False

    def __iter__(self):
        feed = not self._fed
        self._fed = True
        for t0, block in self.source:
            if feed:
                self.covariances.add(t0, block)
            yield t0, block


def _two_sources(cov: np.ndarray, pixels: np.ndarray, dims, n_frames: int):
    n = cov.shape[0]
    vals, vecs = scipy.linalg.eigh(cov, subset_by_index=[n - 2, n - 1])
    vals, vecs = vals[::-1], vecs[:, ::-1]
    if vals[0] <= 0:
        return None
    noise = (float(np.trace(cov)) - float(vals.sum())) / (n - 2)  # mean of the other eigenvalues
    edge = max(noise, 0.0) * (1.0 + np.sqrt(n / max(n_frames, 1))) ** 2
    if not vals[1] > EDGE_MARGIN * edge:
        return None
    u = vecs[:, :2] * np.sqrt(np.maximum(vals[:2], 0.0))
    if u[:, 0].sum() < 0:
        u[:, 0] = -u[:, 0]
    norm = np.hypot(u[:, 0], u[:, 1])
    strong = norm >= 0.2 * norm.max()
    theta = np.arctan2(u[:, 1], u[:, 0])
    lo, hi = np.percentile(theta[strong], [EDGE_PERCENTILE, 100.0 - EDGE_PERCENTILE])
    basis = np.array([[np.cos(lo), np.cos(hi)], [np.sin(lo), np.sin(hi)]])
    if abs(np.linalg.det(basis)) < 1e-3:
        return None
    coef = np.maximum(np.linalg.solve(basis, u.T).T, 0.0)
    a, b = coef[:, 0], coef[:, 1]
    ea, eb = float(a @ a), float(b @ b)
    if min(ea, eb) < MIN_ENERGY_SHARE * (ea + eb):
        return None
    if float(a @ b) / np.sqrt(ea * eb) > MAX_SPLIT_COSINE:
        return None
    pa, pb = _peak(a, pixels, dims), _peak(b, pixels, dims)
    if np.hypot(pa[0] - pb[0], pa[1] - pb[1]) < MIN_PEAK_DISTANCE:
        return None
    return a, b, pb


def _peak(values: np.ndarray, pixels: np.ndarray, dims) -> tuple[int, int]:
    y, x = divmod(int(pixels[int(np.argmax(values))]), int(dims[1]))
    return int(y), int(x)


def apply_splits(A, C: np.ndarray, splits: list[Split], dims: tuple[int, int], grid_dims: tuple[int, int],
                 ssub: int) -> tuple[sp.csc_matrix, np.ndarray]:
    """Footprints and traces with every split component shared between its two neurons.

    ``A`` is at full resolution ``dims``; the splits were found on ``grid_dims`` (``ssub`` x
    ``ssub`` tiles). Each full-resolution pixel of a split component goes to its two neurons in
    proportion to their footprints on its tile (pixels outside the analysed core stay with the
    component); the second neuron is appended as a new column with, for now, the component's
    trace, so ``A C`` is unchanged until the next temporal update demixes the two.
    """
    A = sp.csc_matrix(A, dtype=np.float32, copy=True)
    H, W = dims
    w_grid = int(grid_dims[1])
    new_cols, new_rows, new_vals = [], [], []
    for n, split in enumerate(splits):
        total = split.kept + split.other
        share_of = np.zeros(int(grid_dims[0]) * w_grid, np.float32)
        share_of[split.pixels] = np.where(total > 0, split.other / np.where(total > 0, total, 1.0), 0.0)
        in_core = np.zeros(share_of.size, bool)
        in_core[split.pixels] = True
        lo, hi = A.indptr[split.component], A.indptr[split.component + 1]
        y, x = np.divmod(A.indices[lo:hi], W)
        tiles = (y // ssub) * w_grid + (x // ssub)
        other = np.where(in_core[tiles], share_of[tiles], 0.0).astype(np.float32)
        moved = A.data[lo:hi] * other
        A.data[lo:hi] -= moved
        keep = moved > 0
        new_rows.append(A.indices[lo:hi][keep])
        new_vals.append(moved[keep])
        new_cols.append(np.full(int(keep.sum()), A.shape[1] + n))
    A.eliminate_zeros()
    if not splits:
        return A, C
    extra = sp.csc_matrix((np.concatenate(new_vals), (np.concatenate(new_rows), np.concatenate(new_cols) - A.shape[1])),
                          shape=(H * W, len(splits)), dtype=np.float32)
    C_new = np.concatenate([C, C[[split.component for split in splits]]])
    return sp.hstack([A, extra]).tocsc(), C_new
