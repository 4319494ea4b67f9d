"""Figures for every stage. Result classes never draw; these functions do.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot
(no GUI backend is ever imported), so it works headless; :func:`figure_png`
turns one into PNG bytes for files and Dagster previews.
"""
from .common import figure_png, new_figure

__all__ = ["figure_png", "new_figure"]
