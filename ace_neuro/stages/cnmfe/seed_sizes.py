"""How wide the neurons are: the activity-triggered image around each seed, measured at half maximum."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .filters import spatial_filter


def measure_seed_sizes(source, seeds_yx: np.ndarray, *, gSig, half_width: int | None = None,
                       active_quantile: float = 0.95) -> np.ndarray:
    """Gaussian width of the activity-triggered image around each seed.

    Parameters
    ----------
    source : re-iterable of (t0, block)
        Frame blocks (two passes are made).
    seeds_yx : ndarray, shape (N, 2)
        Seed positions (row, column).
    gSig : (int, int)
        Filter width used to read the seeds' traces.
    half_width : int, optional
        Half-size of the measurement box; default ``max(12, 5 * max(gSig))``.
    active_quantile : float
        Frames above this quantile of the seed's trace count as active; frames
        below the median as baseline.

    Returns
    -------
    ndarray, shape (M, 3)
        ``(y, x, sigma_px)`` for the seeds where a width could be measured.
    """
    seeds_yx = np.asarray(seeds_yx, dtype=int).reshape(-1, 2)
    if len(seeds_yx) == 0:
        return np.zeros((0, 3))
    hw = int(half_width or max(12, 5 * max(gSig)))
    traces = []
    dims = None
    for _, block in source:
        F = spatial_filter(block, gSig, center_psf=True)
        traces.append(F[:, seeds_yx[:, 0], seeds_yx[:, 1]])
        dims = block.shape[1:]
    tr = np.concatenate(traces, axis=0).T  # (N, T)
    hi = np.quantile(tr, active_quantile, axis=1)
    lo = np.median(tr, axis=1)
    active = tr >= hi[:, None]
    base = tr <= lo[:, None]
    H, W = dims
    boxes = []
    for y, x in seeds_yx:
        boxes.append((max(0, y - hw), min(H, y + hw + 1), max(0, x - hw), min(W, x + hw + 1)))
    acc_a = [np.zeros((b[1] - b[0], b[3] - b[2])) for b in boxes]
    acc_b = [np.zeros_like(a) for a in acc_a]
    for t0, block in source:
        sl = slice(t0, t0 + block.shape[0])
        for i, (r0, r1, c0, c1) in enumerate(boxes):
            ma = active[i, sl]
            mb = base[i, sl]
            if ma.any():
                acc_a[i] += block[ma, r0:r1, c0:c1].sum(axis=0)
            if mb.any():
                acc_b[i] += block[mb, r0:r1, c0:c1].sum(axis=0)
    out = []
    for i, (y, x) in enumerate(seeds_yx):
        na, nb = active[i].sum(), base[i].sum()
        if na == 0 or nb == 0:
            continue
        img = acc_a[i] / na - acc_b[i] / nb
        r0, _, c0, _ = boxes[i]
        sigma = _half_max_sigma(img, y - r0, x - c0)
        if np.isfinite(sigma):
            out.append((y, x, sigma))
    return np.array(out, dtype=float).reshape(-1, 3)


def _half_max_sigma(img: np.ndarray, cy: int, cx: int) -> float:
    """Gaussian width from the area of the connected half-maximum region at (cy, cx)."""
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    img = img - np.median(border)
    y0, y1 = max(0, cy - 2), min(img.shape[0], cy + 3)
    x0, x1 = max(0, cx - 2), min(img.shape[1], cx + 3)
    local = img[y0:y1, x0:x1]
    if local.size == 0:
        return float("nan")
    peak = float(local.max())
    if not peak > 0:
        return float("nan")
    py, px = np.unravel_index(int(np.argmax(local)), local.shape)
    labels, _ = ndimage.label(img >= peak / 2.0)
    lab = labels[y0 + py, x0 + px]
    region = labels == lab
    # a region touching the box edge is not an isolated neuron
    if region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any():
        return float("nan")
    area = float(region.sum())
    return float(np.sqrt(area / (2.0 * np.pi * np.log(2.0))))
