"""Patches (``rf``, ``stride``): tiles of the field of view for the seed search.

CaImAn cuts the field into overlapping patches of ``2 * rf + 1`` pixels whose
overlap is ``stride + 1`` pixels (consecutive patches start ``2 * rf - stride``
pixels apart), initialises each patch separately with at most ``K`` components,
and stitches the results.

In the native engine every later computation (box statistics of a seed, the
ring background, spatial updates on local supports, temporal updates) is local
and streamed over frames for the whole field at once, which is what running
each patch and stitching them would compute, without seams at patch borders.
Patches therefore keep the role that changes results: the seed search. Each
seed belongs to one patch (the one whose centre is nearest among those
containing it, so a seed in an overlap is counted once: that is the
stitching), and ``K`` caps the number of seeds per patch, keeping the
highest-scoring ones (CaImAn's meaning of ``K`` when ``rf`` is set). With
``rf=None`` the whole field is one patch and ``K`` caps the total.
"""
from __future__ import annotations

import numpy as np

from .errors import CnmfeParameterError

__all__ = ["patch_grid", "assign_to_patches", "cap_per_patch"]


def _starts(n: int, size: int, step: int) -> list[int]:
    if size >= n:
        return [0]
    starts = list(range(0, n - size + 1, step))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts


def patch_grid(dims: tuple[int, int], rf: int | None, stride: int) -> list[tuple[int, int, int, int]]:
    """Patches ``(r0, r1, c0, c1)`` (half-open) covering a field of ``dims`` pixels.

    Parameters
    ----------
    dims : (H, W)
    rf : int or None
        Patch half-size; None = one patch for the whole field.
    stride : int
        Overlap between neighbouring patches, in pixels (CaImAn's meaning).
    """
    H, W = (int(d) for d in dims)
    if rf is None:
        return [(0, H, 0, W)]
    rf = int(rf)
    if rf < 1:
        raise CnmfeParameterError(f"rf (patch half-size) must be >= 1 pixel or empty, got {rf}")
    size = 2 * rf + 1
    if not 0 <= stride < size:
        raise CnmfeParameterError(
            f"stride (patch overlap) must be >= 0 and smaller than the patch size 2*rf+1 = {size}, got {stride}")
    step = max(1, size - int(stride) - 1)
    return [(r, min(H, r + size), c, min(W, c + size))
            for r in _starts(H, size, step) for c in _starts(W, size, step)]


def assign_to_patches(yx: np.ndarray, grid: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Index of the owning patch of each point (nearest centre among containing patches)."""
    yx = np.asarray(yx, dtype=float).reshape(-1, 2)
    if len(yx) == 0:
        return np.zeros(0, dtype=int)
    g = np.asarray(grid, dtype=float)
    centres = np.column_stack([(g[:, 0] + g[:, 1] - 1) / 2, (g[:, 2] + g[:, 3] - 1) / 2])
    inside = ((yx[:, None, 0] >= g[None, :, 0]) & (yx[:, None, 0] < g[None, :, 1])
              & (yx[:, None, 1] >= g[None, :, 2]) & (yx[:, None, 1] < g[None, :, 3]))
    d2 = ((yx[:, None, :] - centres[None]) ** 2).sum(-1)
    d2 = np.where(inside, d2, np.inf)
    return np.argmin(d2, axis=1)


def cap_per_patch(scores: np.ndarray, owner: np.ndarray, K: int | None) -> np.ndarray:
    """Boolean mask keeping at most ``K`` highest-scoring items per patch (all if K is None)."""
    scores = np.asarray(scores, dtype=float)
    keep = np.ones(len(scores), dtype=bool)
    if K is None:
        return keep
    for p in np.unique(owner):
        idx = np.flatnonzero(owner == p)
        if len(idx) > K:
            order = idx[np.argsort(-scores[idx], kind="stable")]
            keep[order[K:]] = False
    return keep
