"""Figures of a movie: projections, with an optional crop box."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .common import new_figure


def plot_projections(mean_img: np.ndarray, max_img: np.ndarray, *, title: str = "") -> Figure:
    """Mean and max projections side by side."""
    fig = new_figure(8, 4)
    for ax, img, name in zip(fig.subplots(1, 2), (mean_img, max_img), ("mean", "max")):
        im = ax.imshow(img, cmap="gray")
        ax.set_title(f"{name} projection")
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig
