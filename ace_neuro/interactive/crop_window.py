"""The crop window: drag a rectangle on a projection of the movie.

The image is drawn with ``extent=(0, W, 0, H)`` and ``origin='upper'``: it looks
like the camera frame (row 0 at the top) while the axes' data coordinates are
exactly the ``crop_coords`` convention - origin at the BOTTOM-left, y up. A dragged
rectangle therefore gives ``(x0, y0, x1, y1)`` directly; :func:`crop_box_from_coords`
turns it into rows and columns. The window offers the projections (max / mean / std
/ ...) with radio buttons; "Crop" accepts the rectangle, "No crop" (or closing the
window) means *no crop* - never an empty crop.

Model and view are separate: :class:`CropSelectorModel` holds the state and is
pure Python; :class:`CropWindow` draws it on any matplotlib Figure with
``RectangleSelector``, ``RadioButtons`` and ``Button`` widgets; :func:`select_crop`
opens a real window (the only function that imports :mod:`matplotlib.pyplot`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from matplotlib.figure import Figure

from ace_neuro.stages.crop import CropBox, CropError, crop_box_from_coords

from . import interactive_pyplot

log = logging.getLogger(__name__)


class CropWindowError(ValueError):
    """Projections the crop window cannot show (empty, not 2-D, different shapes, unknown kind)."""


@dataclass(frozen=True)
class CropChoice:
    """What the user chose in the crop window.

    Attributes
    ----------
    coords : (x0, y0, x1, y1) or None
        Crop corners in the crop_coords convention (origin bottom-left, y up), written as
        (left, top, right, bottom); None when the user chose not to crop.
    box : CropBox or None
        The same crop in array rows/columns.
    projection : str
        The projection shown when the choice was made.
    """

    coords: tuple[int, int, int, int] | None
    box: CropBox | None
    projection: str

    @property
    def cancelled(self) -> bool:
        """True when the user chose "No crop" (or closed the window)."""
        return self.coords is None


class CropSelectorModel:
    """State and callbacks of the crop window (no drawing).

    Parameters
    ----------
    projections : mapping str -> ndarray (H, W)
        The images to choose from, e.g. ``{"max": ..., "mean": ..., "std": ...}``.
    kind : str, optional
        The projection shown first (default: the first key).
    coords : (x0, y0, x1, y1), optional
        A rectangle to start from (e.g. the CSV's current value).
    """

    def __init__(self, projections: Mapping[str, np.ndarray], *, kind: str | None = None,
                 coords: tuple[int, int, int, int] | None = None):
        if not projections:
            raise CropWindowError("projections is empty: give at least one image, e.g. {'max': image}")
        images = {str(k): np.asarray(v) for k, v in projections.items()}
        shapes = {k: v.shape for k, v in images.items()}
        if any(len(s) != 2 or 0 in s for s in shapes.values()) or len(set(shapes.values())) != 1:
            raise CropWindowError(f"projections must be non-empty 2-D images of one shape (H, W); got {shapes}")
        self._images = images
        self.kind = next(iter(images)) if kind is None else kind
        if self.kind not in images:
            raise CropWindowError(f"kind {kind!r} is not one of the projections {list(images)}")
        self.coords: tuple[int, int, int, int] | None = None
        self.status = "Drag a rectangle, then press Crop (or No crop)."
        self.choice: CropChoice | None = None
        self._listeners: list[Callable[[], None]] = []
        if coords is not None:
            self.set_coords(coords)

    # -- read-only state -----------------------------------------------------------------
    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._images)

    @property
    def image(self) -> np.ndarray:
        """The projection currently shown, (H, W)."""
        return self._images[self.kind]

    @property
    def frame_shape(self) -> tuple[int, int]:
        h, w = self.image.shape
        return int(h), int(w)

    @property
    def box(self) -> CropBox | None:
        return None if self.coords is None else crop_box_from_coords(self.coords, self.frame_shape)

    @property
    def finished(self) -> bool:
        return self.choice is not None

    # -- callbacks -------------------------------------------------------------------------
    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change of state (the view redraws)."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for cb in self._listeners:
            cb()

    def choose_projection(self, kind: str) -> None:
        if kind not in self._images:
            raise CropWindowError(f"kind {kind!r} is not one of the projections {list(self._images)}")
        self.kind = kind
        self._changed()

    def set_rectangle(self, xa: float, ya: float, xb: float, yb: float) -> None:
        """A rectangle dragged between two corners, in crop coordinates (pixels, y up).

        Corners are rounded to whole pixels and clipped to the frame. A rectangle
        narrower than one pixel leaves no selection (and says so in ``status``).
        """
        h, w = self.frame_shape
        xs = sorted(int(np.clip(round(float(v)), 0, w)) for v in (xa, xb))
        ys = sorted(int(np.clip(round(float(v)), 0, h)) for v in (ya, yb))
        if xs[0] == xs[1] or ys[0] == ys[1]:
            self.coords = None
            self.status = "That rectangle is empty: drag a larger one."
        else:
            self.coords = (xs[0], ys[1], xs[1], ys[0])  # (left, top, right, bottom), as the lab writes them
            box = self.box
            self.status = (f"crop_coords {self.coords}: rows {box.row0}..{box.row1 - 1}, columns "
                           f"{box.col0}..{box.col1 - 1} ({box.height} x {box.width}). Press Crop to keep it.")
        self._changed()

    def set_coords(self, coords) -> None:
        """Start from existing ``crop_coords`` (validated against the frame)."""
        try:
            crop_box_from_coords(coords, self.frame_shape)
        except CropError as exc:
            raise CropWindowError(str(exc)) from None
        x0, y0, x1, y1 = (int(c) for c in coords)
        self.set_rectangle(x0, y0, x1, y1)

    def clear(self) -> None:
        self.coords = None
        self.status = "Selection cleared: drag a rectangle, then press Crop (or No crop)."
        self._changed()

    def accept(self) -> CropChoice | None:
        """Keep the rectangle. Without one, nothing happens (``status`` says what to do)."""
        if self.coords is None:
            self.status = "No rectangle yet: drag one on the image, or press No crop."
            self._changed()
            return None
        self.choice = CropChoice(self.coords, self.box, self.kind)
        self.status = f"Cropping to {self.coords}."
        self._changed()
        return self.choice

    def cancel(self) -> CropChoice:
        """No crop (the window's "No crop" button, or closing the window)."""
        self.choice = CropChoice(None, None, self.kind)
        self.status = "No crop."
        self._changed()
        return self.choice


class CropWindow:
    """The matplotlib view of a :class:`CropSelectorModel`.

    Parameters
    ----------
    model : CropSelectorModel
    figure : Figure, optional
        Where to draw (a new headless Figure if omitted; :func:`select_crop` passes a
        pyplot figure so it shows in a window).
    on_finish : callable, optional
        Called with the :class:`CropChoice` when the user presses Crop or No crop.
    title : str
        Shown above the image.
    """

    def __init__(self, model: CropSelectorModel, figure: Figure | None = None, *,
                 on_finish: Callable[[CropChoice], None] | None = None, title: str = ""):
        from matplotlib.patches import Rectangle
        from matplotlib.widgets import Button, RadioButtons, RectangleSelector

        self.model = model
        self.figure = figure if figure is not None else Figure(figsize=(9, 6), dpi=100)
        self.figure.set_layout_engine("none")
        self._on_finish = on_finish
        h, w = model.frame_shape
        fig = self.figure
        self.ax_image = fig.add_axes((0.06, 0.14, 0.62, 0.78))
        self.ax_image.set_title(title or "Drag a rectangle to crop (coordinates: origin bottom-left)")
        self.ax_image.set_xlabel("x (pixels)")
        self.ax_image.set_ylabel("y (pixels, up)")
        self.artist = self.ax_image.imshow(model.image, cmap="gray", origin="upper", extent=(0, w, 0, h),
                                           interpolation="nearest")
        self._set_limits()
        self.box_patch = Rectangle((0, 0), 0, 0, fill=False, edgecolor="tab:orange", linewidth=1.5, visible=False)
        self.ax_image.add_patch(self.box_patch)
        self.selector = RectangleSelector(self.ax_image, self._on_select, useblit=False, button=[1],
                                          minspanx=0, minspany=0, spancoords="data", interactive=False,
                                          props={"edgecolor": "tab:orange", "fill": False})
        ax_radio = fig.add_axes((0.74, 0.52, 0.22, 0.4))
        ax_radio.set_title("projection")
        self.radio = RadioButtons(ax_radio, list(model.kinds), active=model.kinds.index(model.kind))
        self.radio.on_clicked(self._on_kind)
        self.crop_button = Button(fig.add_axes((0.74, 0.30, 0.22, 0.08)), "Crop")
        self.crop_button.on_clicked(lambda _event: self._finish(self.model.accept()))
        self.no_crop_button = Button(fig.add_axes((0.74, 0.20, 0.22, 0.08)), "No crop")
        self.no_crop_button.on_clicked(lambda _event: self._finish(self.model.cancel()))
        self.clear_button = Button(fig.add_axes((0.74, 0.10, 0.22, 0.08)), "Clear")
        self.clear_button.on_clicked(lambda _event: self.model.clear())
        self.status_text = fig.text(0.06, 0.03, model.status, fontsize=9)
        model.on_change(self.refresh)
        self.refresh()

    def _set_limits(self) -> None:
        img = self.model.image.astype(np.float64)
        finite = img[np.isfinite(img)]
        lo, hi = (np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0))
        self.artist.set_clim(lo, hi if hi > lo else lo + 1)

    def _on_select(self, eclick, erelease) -> None:
        if None in (eclick.xdata, eclick.ydata, erelease.xdata, erelease.ydata):
            return
        self.model.set_rectangle(eclick.xdata, eclick.ydata, erelease.xdata, erelease.ydata)

    def _on_kind(self, label: str | None) -> None:
        if label is not None:
            self.model.choose_projection(label)

    def _finish(self, choice: CropChoice | None) -> None:
        if choice is not None and self._on_finish is not None:
            self._on_finish(choice)

    def refresh(self) -> None:
        """Redraw from the model's state."""
        self.artist.set_data(self.model.image)
        self._set_limits()
        coords = self.model.coords
        if coords is None:
            self.box_patch.set_visible(False)
        else:
            x0, y0, x1, y1 = coords
            self.box_patch.set_bounds(min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0))
            self.box_patch.set_visible(True)
        self.status_text.set_text(self.model.status)
        self.figure.canvas.draw_idle()


def select_crop(projections: Mapping[str, np.ndarray], *, kind: str | None = None,
                coords: tuple[int, int, int, int] | None = None, title: str = "") -> CropChoice:
    """Open the crop window and wait for the user's choice.

    Parameters
    ----------
    projections : mapping str -> ndarray (H, W)
        Images to choose from (see :func:`ace_neuro.stages.crop.compute_projections`).
    kind : str, optional
        Projection shown first.
    coords : (x0, y0, x1, y1), optional
        Rectangle shown first.
    title : str

    Returns
    -------
    CropChoice
        ``cancelled`` when the user pressed "No crop" or closed the window.

    Raises
    ------
    InteractiveUnavailableError
        No interactive matplotlib backend (no display).
    """
    plt = interactive_pyplot()
    model = CropSelectorModel(projections, kind=kind, coords=coords)
    fig = plt.figure(figsize=(10, 7))
    window = CropWindow(model, fig, on_finish=lambda _choice: plt.close(fig), title=title)
    plt.show(block=True)  # the widgets live as long as ``window`` is referenced
    del window
    if model.choice is None:
        log.info("crop window closed without a choice: no crop")
        return model.cancel()
    return model.choice


__all__ = ["CropChoice", "CropSelectorModel", "CropWindow", "CropWindowError", "select_crop"]
