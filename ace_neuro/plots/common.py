"""Headless figure helpers shared by the stage plots."""
from __future__ import annotations

import base64
import io

from matplotlib.figure import Figure


def new_figure(width_in: float = 6.0, height_in: float = 4.0, dpi: int = 80) -> Figure:
    """A figure that is not attached to any GUI backend (safe headless)."""
    return Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")


def figure_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def png_markdown(png: bytes, alt: str = "preview") -> str:
    """Markdown with the PNG embedded inline (how the Dagster UI shows previews)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
