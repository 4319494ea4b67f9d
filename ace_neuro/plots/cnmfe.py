"""Previews of CNMF-E: summary images with seeds, component contours, top traces.

All figures are built with :func:`ace_neuro.plots.common.new_figure` (no GUI
backend); render them with :func:`ace_neuro.plots.common.figure_png`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .common import new_figure

__all__ = ["plot_summary_images", "plot_contours", "plot_traces"]


def _image(ax, img, title, *, cmap="gray", vmin=None, vmax=None):
    im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def plot_summary_images(corr: np.ndarray, pnr: np.ndarray, *, seeds: np.ndarray | None = None,
                        min_corr: float | None = None, min_pnr: float | None = None,
                        seed_table: pd.DataFrame | None = None) -> Figure:
    """Correlation and PNR images with the seeds, and optionally the seed-count table.

    Parameters
    ----------
    corr, pnr : ndarray, shape (H, W)
    seeds : ndarray, shape (N, >=2), optional
        Seed positions (y, x) to mark.
    min_corr, min_pnr : float, optional
        Thresholds, shown in the titles and as the contour of pixels passing both.
    seed_table : DataFrame, optional
        Columns ``min_corr, min_pnr, n_seeds``; drawn as a heat map.
    """
    n = 3 if seed_table is not None and len(seed_table) else 2
    fig = new_figure(4.0 * n, 4.0)
    axes = fig.subplots(1, n)
    im0 = _image(axes[0], corr, "correlation" + (f" (min_corr {min_corr:g})" if min_corr is not None else ""),
                 vmin=0, vmax=1)
    fig.colorbar(im0, ax=axes[0], shrink=0.7)
    hi = np.nanpercentile(pnr, 99.5) if np.isfinite(pnr).any() else 1.0
    im1 = _image(axes[1], pnr, "peak-to-noise" + (f" (min_pnr {min_pnr:g})" if min_pnr is not None else ""),
                 cmap="viridis", vmin=0, vmax=max(hi, 1e-6))
    fig.colorbar(im1, ax=axes[1], shrink=0.7)
    if min_corr is not None and min_pnr is not None:
        passing = ((corr >= min_corr) & (pnr >= min_pnr)).astype(float)
        if passing.any() and not passing.all():
            for ax in axes[:2]:
                ax.contour(passing, levels=[0.5], colors="orange", linewidths=0.6)
    if seeds is not None and len(seeds):
        s = np.asarray(seeds)
        for ax in axes[:2]:
            ax.plot(s[:, 1], s[:, 0], "r+", markersize=5, markeredgewidth=0.8)
        axes[0].set_xlabel(f"{len(s)} seeds", fontsize=8)
    if n == 3:
        piv = seed_table.pivot(index="min_corr", columns="min_pnr", values="n_seeds")
        ax = axes[2]
        im2 = ax.imshow(piv.to_numpy(), cmap="magma", aspect="auto", origin="lower")
        ax.set_xticks(range(piv.shape[1]))
        ax.set_xticklabels([f"{v:g}" for v in piv.columns], fontsize=7)
        ax.set_yticks(range(piv.shape[0]))
        ax.set_yticklabels([f"{v:g}" for v in piv.index], fontsize=7)
        ax.set_xlabel("min_pnr", fontsize=8)
        ax.set_ylabel("min_corr", fontsize=8)
        ax.set_title("number of seeds", fontsize=9)
        values = piv.to_numpy(dtype=float)
        middle = 0.5 * (np.nanmin(values) + np.nanmax(values)) if values.size else 0.0
        for i in range(piv.shape[0]):
            for j in range(piv.shape[1]):
                v = values[i, j]  # dark text on the light cells, light text on the dark ones
                ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=7,
                        color="black" if v > middle else "white")
        if min_corr is not None and min_pnr is not None:
            _mark_thresholds(ax, piv, min_corr, min_pnr)
        fig.colorbar(im2, ax=ax, shrink=0.7)
    return fig


def _mark_thresholds(ax, piv: pd.DataFrame, min_corr: float, min_pnr: float) -> None:
    """Outline the heat-map cell nearest the thresholds in use."""
    i = int(np.argmin(np.abs(piv.index.to_numpy(dtype=float) - min_corr)))
    j = int(np.argmin(np.abs(piv.columns.to_numpy(dtype=float) - min_pnr)))
    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="cyan", linewidth=1.5))


def _footprint_box(result, k: int):
    A = result.A.tocsc()
    H, W = result.dims
    rows = A.indices[A.indptr[k]:A.indptr[k + 1]]
    vals = A.data[A.indptr[k]:A.indptr[k + 1]]
    if rows.size == 0:
        return None
    y, x = np.divmod(rows, W)
    r0, r1, c0, c1 = max(0, y.min() - 1), min(H, y.max() + 2), max(0, x.min() - 1), min(W, x.max() + 2)
    box = np.zeros((r1 - r0, c1 - c0))
    box[y - r0, x - c0] = vals
    return box, r0, c0


def plot_contours(result, table: pd.DataFrame | None = None, *, background: np.ndarray | None = None,
                  level: float = 0.5, label: bool = True, size_in: float = 6.0, dpi: int = 80) -> Figure:
    """Contours (at ``level`` of each footprint's max) on the correlation image, labelled with their ids.

    With ``table`` (after evaluation), accepted components are green and rejected red; without it
    every component found is drawn in yellow, before any evaluation.
    """
    fig = new_figure(size_in, size_in, dpi=dpi)
    ax = fig.subplots()
    bg = result.corr if background is None else background
    _image(ax, bg, "components", vmin=float(np.nanmin(bg)), vmax=float(np.nanmax(bg)) if np.isfinite(bg).any() else 1)
    evaluated = table is not None
    # ids stay legible: about 8 px high whatever the figure's size and resolution
    label_size = max(4.0, min(8.0, 8.0 * 72 / dpi * (1.0 if result.n_components <= 150 else 0.8)))
    accepted = np.ones(result.n_components, bool)
    if evaluated and len(table):
        accepted = np.zeros(result.n_components, bool)
        accepted[table["component_id"].to_numpy()[table["accepted"].to_numpy()]] = True
    for k in range(result.n_components):
        got = _footprint_box(result, k)
        if got is None:
            continue
        box, r0, c0 = got
        if box.shape[0] < 2 or box.shape[1] < 2:
            continue
        color = ("lime" if accepted[k] else "red") if evaluated else "yellow"
        yy, xx = np.mgrid[r0:r0 + box.shape[0], c0:c0 + box.shape[1]]
        ax.contour(xx, yy, box, levels=[level * box.max()], colors=color, linewidths=0.7)
        if label:
            cy, cx = np.unravel_index(int(np.argmax(box)), box.shape)
            ax.text(c0 + cx, r0 + cy, str(k), color=color, fontsize=label_size, ha="center", va="center")
    if evaluated:
        ax.set_title(f"{int(accepted.sum())} accepted (green), {int((~accepted).sum())} rejected (red)", fontsize=9)
    else:
        ax.set_title(f"{result.n_components} components found, before evaluation", fontsize=9)
    return fig


def plot_traces(result, table: pd.DataFrame | None = None, *, n: int = 10,
                component_ids: Sequence[int] | None = None) -> Figure:
    """Raw (grey) and denoised (colour) traces of the top components, stacked, time in seconds.

    Components are the given ids, else the ``n`` accepted components with the
    highest SNR in ``table``, else the ``n`` with the largest peak over noise.
    """
    K, T = result.C.shape
    if component_ids is None:
        if table is not None and len(table):
            t = table[table["accepted"]] if table["accepted"].any() else table
            component_ids = t.sort_values("snr", ascending=False)["component_id"].to_numpy()[:n]
        else:
            q = result.C.max(axis=1) / np.where(result.sn > 0, result.sn, 1.0) if K else np.zeros(0)
            component_ids = np.argsort(-q)[:n]
    ids = [int(i) for i in component_ids]
    fig = new_figure(8.0, max(2.5, 0.6 * len(ids) + 1.0))
    ax = fig.subplots()
    t = np.arange(T) / float(result.frame_rate)
    offset, tallest = 0.0, 1.0
    for k in ids:  # in units of each trace's noise SD, so one scale bar holds for every trace
        sd = float(result.sn[k]) if result.sn[k] > 0 else 1.0
        raw = (result.C[k] + result.YrA[k]) / sd
        denoised = result.C[k] / sd
        low = float(min(raw.min(), denoised.min())) if T else 0.0
        ax.plot(t, raw - low + offset, color="0.6", linewidth=0.5)
        ax.plot(t, denoised - low + offset, linewidth=0.9)
        ax.text(t[0] if T else 0, offset, f"{k} ", ha="right", va="bottom", fontsize=7)
        height = float(max(raw.max(), denoised.max()) - low) if T else 1.0
        tallest = max(tallest, height)
        offset += height * 1.05
    if ids and T:
        _scale_bar(ax, t[-1], tallest)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("time (s)")
    ax.set_title("top components: raw (grey, C + YrA) and denoised (colour, C) traces" if ids else "no components",
                 fontsize=9)
    return fig


def _scale_bar(ax, x_end: float, tallest: float) -> None:
    """A vertical bar at the right end: a round number of noise SDs, about a quarter of the tallest trace."""
    target = max(tallest / 4.0, 1e-9)
    size = min((m * 10.0 ** e for e in range(-2, 5) for m in (1, 2, 5) if m * 10.0 ** e <= target),
               key=lambda v: target - v, default=target)
    x = x_end * 1.01
    ax.plot([x, x], [0, size], color="black", linewidth=1.5, clip_on=False)
    ax.text(x, size / 2, f" {size:g} noise SD", ha="left", va="center", fontsize=7)
