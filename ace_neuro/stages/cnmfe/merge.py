"""Merging of components that are one neuron, and removal of duplicates.

* Merge (``merge_thr``): components whose footprints overlap (or touch) and whose traces
  correlate above ``merge_thr`` are one neuron split in pieces. Groups are the
  connected components of that relation; each group is replaced by the best
  rank-1 non-negative approximation of its summed contribution ``sum_k a_k c_k'``
  (alternating updates that only need inner products, never the pixels x
  frames product).
* Duplicates (``del_duplicates``): components with nearly the same footprint
  (cosine similarity above 0.85, or one lying within the other with centroids
  closer than ``gSig``) describe the same cell whatever their traces; the one
  with the higher peak-to-noise trace is kept.
"""
from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

log = logging.getLogger(__name__)

__all__ = ["merge_components", "find_duplicates", "footprint_centroids", "touching_pairs"]

DUPLICATE_COSINE = 0.85
DUPLICATE_CONTAINED = 0.9
DUPLICATE_CORE_FRACTION = 0.2  # containment is judged on the pixels above this share of each maximum


def _trace_corr(C: np.ndarray, pairs_i: np.ndarray, pairs_j: np.ndarray) -> np.ndarray:
    Cc = C - C.mean(axis=1, keepdims=True)
    n = np.linalg.norm(Cc, axis=1)
    n[n == 0] = 1.0
    return np.einsum("ij,ij->i", Cc[pairs_i], Cc[pairs_j]) / (n[pairs_i] * n[pairs_j])


def touching_pairs(A: sp.csc_matrix, dims: tuple[int, int] | None) -> sp.coo_matrix:
    """Upper-triangular sparse matrix of component pairs whose supports overlap or touch.

    With ``dims`` the supports are dilated by one pixel (8-neighbourhood), so
    two pieces of a neuron that only share an edge count as overlapping.
    """
    Ab = (A > 0).astype(np.float32).tocsc()
    if dims is not None and Ab.shape[1]:
        H, W = dims
        rows, cols = [], []
        for k in range(Ab.shape[1]):
            idx = Ab.indices[Ab.indptr[k]:Ab.indptr[k + 1]]
            y, x = np.divmod(idx, W)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ty, tx = y + dy, x + dx
                    ok = (ty >= 0) & (ty < H) & (tx >= 0) & (tx < W)
                    rows.append(ty[ok] * W + tx[ok])
                    cols.append(np.full(int(ok.sum()), k))
        D = sp.csc_matrix((np.ones(sum(len(r) for r in rows), np.float32),
                           (np.concatenate(rows), np.concatenate(cols))), shape=Ab.shape)
        D.data[:] = 1.0
        ov = D.T @ Ab
    else:
        ov = Ab.T @ Ab
    ov = ov + ov.T
    return sp.triu(ov, k=1).tocoo()


def merge_components(A: sp.csc_matrix, C: np.ndarray, *, merge_thr: float, dims: tuple[int, int] | None = None,
                     n_iter: int = 10) -> tuple[sp.csc_matrix, np.ndarray, int]:
    """Merge overlapping (or touching) components with correlated traces.

    Parameters
    ----------
    A : sparse (P, K); C : ndarray (K, T)
    merge_thr : float
        Trace correlation above which overlapping components are merged.
    dims : (H, W), optional
        Frame size; when given, components whose supports touch also count as overlapping.
    n_iter : int
        Alternating rank-1 iterations per merged group.

    Returns
    -------
    A, C, n_merged
        New footprints/traces (merged components replace their group, placed at
        the position of the group's first member) and the number of groups merged.
    """
    K = A.shape[1]
    if K < 2:
        return A, C, 0
    ov = touching_pairs(A, dims)
    if ov.nnz == 0:
        return A, C, 0
    r = _trace_corr(C, ov.row, ov.col)
    sel = r > merge_thr
    if not sel.any():
        return A, C, 0
    graph = sp.coo_matrix((np.ones(sel.sum()), (ov.row[sel], ov.col[sel])), shape=(K, K))
    n_comp, labels = connected_components(graph, directed=False)
    A = A.tocsc()
    new_cols = {}
    drop = np.zeros(K, bool)
    n_merged = 0
    for lab in range(n_comp):
        members = np.flatnonzero(labels == lab)
        if len(members) < 2:
            continue
        a, c = _rank1(A[:, members], C[members], n_iter)
        new_cols[members[0]] = (a, c)
        drop[members[1:]] = True
        n_merged += 1
    A = A.tolil()
    C = C.copy()
    for k, (a, c) in new_cols.items():
        A[:, k] = a.reshape(-1, 1)
        C[k] = c
    keep = np.flatnonzero(~drop)
    log.debug("merged %d groups (%d -> %d components)", n_merged, K, len(keep))
    return A.tocsc()[:, keep], C[keep], n_merged


def _rank1(A: sp.csc_matrix, C: np.ndarray, n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Best non-negative rank-1 ``a c'`` of ``sum_k A[:, k] C[k]`` (max(a) = 1)."""
    Ad = np.asarray(A.todense(), dtype=np.float64)  # (P, m), only the group's columns
    Cd = C.astype(np.float64)
    w = Ad.max(axis=0)
    c = (w[:, None] * Cd).sum(axis=0)
    a = np.zeros(Ad.shape[0])
    for _ in range(n_iter):
        cc = float(c @ c)
        if cc <= 0:
            break
        a = np.maximum(Ad @ (Cd @ c) / cc, 0.0)
        aa = float(a @ a)
        if aa <= 0:
            break
        c = np.maximum((a @ Ad) @ Cd / aa, 0.0)
    m = a.max()
    if m > 0:
        a /= m
        c *= m
    return a.astype(np.float32), c.astype(np.float32)


def footprint_centroids(A: sp.csc_matrix, dims: tuple[int, int]) -> np.ndarray:
    """Intensity-weighted centroids ``(y, x)`` of each footprint, shape (K, 2)."""
    H, W = dims
    A = A.tocsc()
    K = A.shape[1]
    out = np.full((K, 2), np.nan)
    for k in range(K):
        rows = A.indices[A.indptr[k]:A.indptr[k + 1]]
        v = A.data[A.indptr[k]:A.indptr[k + 1]].astype(float)
        if v.sum() <= 0:
            continue
        y, x = np.divmod(rows, W)
        out[k] = (np.dot(v, y) / v.sum(), np.dot(v, x) / v.sum())
    return out


def core_supports(A, fraction: float) -> sp.csc_matrix:
    """0/1 matrix (P, K), float32: the pixels where each footprint reaches ``fraction`` of its maximum."""
    A = sp.csc_matrix(A, dtype=np.float32, copy=True)
    peak = np.zeros(A.shape[1], np.float32)
    filled = np.diff(A.indptr) > 0
    if A.nnz:
        peak[filled] = np.maximum.reduceat(A.data, A.indptr[:-1][filled])
    col = np.repeat(np.arange(A.shape[1]), np.diff(A.indptr))
    A.data = (A.data >= fraction * peak[col]).astype(np.float32)
    A.eliminate_zeros()
    return A


def duplicate_pairs(A: sp.spmatrix, dims: tuple[int, int], *, gSig) -> np.ndarray:
    """Pairs of components that are one neuron found twice, shape (n, 2) of column indices (i < j).

    Two footprints are one neuron when they are nearly the same image (cosine above
    ``DUPLICATE_COSINE``), or when one's core lies inside the other's
    (``DUPLICATE_CONTAINED``) and their centroids are closer than ``max(gSig)``.
    """
    if A.shape[1] < 2:
        return np.zeros((0, 2), int)
    A = A.tocsc().astype(np.float64)
    nrm = np.sqrt(np.asarray(A.multiply(A).sum(axis=0))).ravel()
    nrm[nrm == 0] = 1.0
    G = (A.T @ A).tocoo()
    m = G.row < G.col
    i, j, dot = G.row[m], G.col[m], G.data[m]
    cos = dot / (nrm[i] * nrm[j])
    Ab = core_supports(A, DUPLICATE_CORE_FRACTION).astype(np.float64)
    area = np.asarray(Ab.sum(axis=0)).ravel()
    inter = np.asarray((Ab.T @ Ab)[i, j]).ravel() if len(i) else np.zeros(0)
    contained = inter / np.maximum(np.minimum(area[i], area[j]), 1)
    cen = footprint_centroids(A, dims)
    dist = np.linalg.norm(cen[i] - cen[j], axis=1) if len(i) else np.zeros(0)
    dup = (cos > DUPLICATE_COSINE) | ((contained > DUPLICATE_CONTAINED) & (dist < float(max(gSig))))
    return np.stack([i[dup], j[dup]], axis=1).astype(int)


def find_duplicates(A: sp.csc_matrix, dims: tuple[int, int], *, quality: np.ndarray,
                    gSig) -> np.ndarray:
    """Boolean mask of components to keep after removing duplicates (:func:`duplicate_pairs`).

    Parameters
    ----------
    A : sparse (P, K)
    dims : (H, W)
    quality : ndarray, shape (K,)
        Higher is better (e.g. peak-to-noise of the trace); the better of a
        duplicate pair is kept.
    gSig : (int, int)
        Centroid distance under which a contained footprint is a duplicate.
    """
    keep = np.ones(A.shape[1], bool)
    pairs = duplicate_pairs(A, dims, gSig=gSig)
    order = np.argsort(-np.minimum(quality[pairs[:, 0]], quality[pairs[:, 1]]))
    for a, b in pairs[order]:
        if keep[a] and keep[b]:
            keep[b if quality[a] >= quality[b] else a] = False
    return keep
