"""Headless figure helpers shared by the stage plots."""
from __future__ import annotations

import base64
import io
import os
from pathlib import Path

from matplotlib.figure import Figure


def new_figure(width_in: float = 6.0, height_in: float = 4.0, dpi: int = 80) -> Figure:
    """A figure that is not attached to any GUI backend (safe headless)."""
    return Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")


def figure_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_png(fig: Figure, path: str | os.PathLike) -> bytes:
    """Render a figure to ``path`` as PNG (atomically: a reader never sees half a file); returns the bytes."""
    png = figure_png(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(png)
    os.replace(tmp, path)
    return png


def png_markdown(png: bytes, alt: str = "preview") -> str:
    """Markdown with the PNG embedded inline (how the Dagster UI shows previews)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
