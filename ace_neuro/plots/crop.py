"""Crop preview: a projection image with the crop rectangle (headless)."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ace_neuro.plots.common import new_figure
from ace_neuro.stages.crop import CropBox


def plot_crop_preview(image: np.ndarray, box: CropBox | None = None, *, kind: str = "max",
                      title: str | None = None) -> Figure:
    """Projection image with the crop box outlined.

    The axes are in the crop coordinates' convention (origin at the bottom-left,
    y up), so the numbers a user reads off the plot are the ones that go in
    ``crop_coords``.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        A projection of the uncropped movie (see :func:`ace_neuro.stages.crop.projection`).
    box : CropBox, optional
        The crop; none drawn when None.
    kind : str
        Name of the projection, for the title.
    title : str, optional
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be (H, W), got shape {img.shape}")
    height, width = img.shape
    fig = new_figure(5.0, 5.0 * height / max(width, 1) + 0.6)
    ax = fig.add_subplot()
    lo, hi = np.percentile(img, [1, 99.5]) if img.size else (0.0, 1.0)
    ax.imshow(img, cmap="gray", origin="upper", extent=(0, width, 0, height), vmin=lo, vmax=max(hi, lo + 1e-12),
              interpolation="nearest")
    if box is not None:
        x0, y0, x1, y1 = box.to_coords(height)
        ax.add_patch(Rectangle((x0, y1), x1 - x0, y0 - y1, fill=False, edgecolor="tab:orange", linewidth=1.5))
        ax.text(x0, y0, f" crop_coords ({x0}, {y0}, {x1}, {y1})\n {box.height} x {box.width} px",
                color="tab:orange", va="top", ha="left", fontsize=8,
                bbox=dict(facecolor="black", alpha=0.5, edgecolor="none", pad=1.0))
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px, origin bottom-left)")
    ax.set_title(title or f"{kind} projection ({height} x {width})")
    return fig


__all__ = ["plot_crop_preview"]
