"""The component review window: accept or reject CNMF-E components by hand.

The window shows every component's contour on a summary image (the correlation
image when CNMF-E stored one), coloured by its current decision (green accepted,
red rejected), and the selected component's trace. Click a contour (or use Prev /
Next) to select, "Accept / Reject" to toggle, "Save" to write the line's curation
file, which ``accepted_components`` applies on top of the automatic ``min_SNR`` /
``rval_thr`` selection, so the choice survives re-running.

The curation file holds only the *manual* changes::

    {"rejected": [ids the automatic test accepted, rejected by hand],
     "restored": [ids the automatic test rejected, accepted by hand],
     "note": "...", "updated": "<ISO time>"}

Model and view are separate: :class:`ReviewModel` is pure Python (decisions,
selection, the curation it implies); :class:`ReviewWindow` draws it on any matplotlib
Figure with ``Button`` widgets and mouse clicks; :func:`review_components` opens a real
window (the only function that imports :mod:`matplotlib.pyplot`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import sparse

from ace_neuro.project import curation_file as curation_file_for  # <project>/curation/<line>.json

from . import interactive_pyplot

log = logging.getLogger(__name__)

class ReviewError(ValueError):
    """Inputs the review window cannot show (mismatched components, shapes or ids)."""


def _as_id_list(values) -> list[int]:
    return sorted({int(v) for v in (values or ())})


def automatic_decisions(table: pd.DataFrame) -> list[bool] | None:
    """Each component's automatic decision, read back from an ``accepted_components`` table.

    The table holds the decisions with any manual curation applied; a manually changed
    row says so in its ``reason`` (``"manual: rejected ..."`` / ``"manual: restored ..."``),
    so the automatic decision is the opposite of the stored one there. None when the
    table has no ``reason`` column.
    """
    if "reason" not in table.columns:
        return None
    out = []
    for accepted, reason in zip(table["accepted"].astype(bool), table["reason"].fillna("").astype(str)):
        if reason.startswith("manual: rejected"):
            out.append(True)
        elif reason.startswith("manual: restored"):
            out.append(False)
        else:
            out.append(bool(accepted))
    return out


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ReviewInputs:
    """Everything the review window shows, for one line.

    Attributes
    ----------
    footprints : scipy.sparse.csc_matrix, shape (H*W, K)
        Spatial footprints, pixel order C-order of (H, W) (CNMF-E's ``A``).
    dims : (H, W)
    traces : ndarray, shape (K, T)
        Calcium traces (CNMF-E's ``C``).
    image : ndarray, shape (H, W)
        Background image for the contours (correlation image, or a projection).
    table : DataFrame
        One row per component, in the order of ``footprints``' columns, with at least
        ``component_id`` and ``accepted`` (``reason``, ``snr``, ``r_value`` shown if present).
    curation_file : Path
        Where the manual curation is read from and saved to.
    frame_rate : float or None
        For a time axis in seconds (frames otherwise).
    """

    footprints: sparse.csc_matrix
    dims: tuple[int, int]
    traces: np.ndarray
    image: np.ndarray
    table: pd.DataFrame
    curation_file: Path
    frame_rate: float | None = None

    def __post_init__(self) -> None:
        h, w = self.dims
        n_pix, k = self.footprints.shape
        if n_pix != h * w:
            raise ReviewError(f"footprints have {n_pix} rows but dims {self.dims} give {h * w} pixels")
        if self.traces.ndim != 2 or self.traces.shape[0] != k:
            raise ReviewError(f"traces must be (K, T) with K = {k} components; got shape {self.traces.shape}")
        if tuple(self.image.shape) != (h, w):
            raise ReviewError(f"image shape {self.image.shape} differs from dims {self.dims}")
        if len(self.table) != k:
            raise ReviewError(f"the table has {len(self.table)} rows for {k} components")
        missing = [c for c in ("component_id", "accepted") if c not in self.table.columns]
        if missing:
            raise ReviewError(f"the table lacks column(s) {missing}")
        if self.table["component_id"].duplicated().any():
            raise ReviewError("component_id values repeat in the table")

    @property
    def component_ids(self) -> tuple[int, ...]:
        return tuple(int(i) for i in self.table["component_id"])

    def footprint_patch(self, index: int, margin: int = 2) -> tuple[np.ndarray, int, int]:
        """The ``index``-th footprint cut to its bounding box (+ margin): (patch, row0, col0)."""
        h, w = self.dims
        col = self.footprints[:, index]
        pix = col.indices
        if pix.size == 0:
            return np.zeros((1, 1)), 0, 0
        rows, cols = np.divmod(pix, w)
        r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin + 1, h)
        c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin + 1, w)
        patch = np.zeros((r1 - r0, c1 - c0))
        patch[rows - r0, cols - c0] = col.data
        return patch, int(r0), int(c0)


def _first_attr(obj, names: Sequence[str]):
    for n in names:
        v = getattr(obj, n, None)
        if v is not None:
            return v
    return None


def review_inputs_from_estimates(estimates: Any, table: pd.DataFrame, *, curation_file: str | os.PathLike,
                                 frame_rate: float | None = None) -> ReviewInputs:
    """Build :class:`ReviewInputs` from a CNMF-E result (``A``, ``C``, ``dims``, a summary image).

    The table's rows are matched to the result's components by ``component_id`` when the
    ids are column indices of ``A`` (0..K-1), otherwise by position.
    """
    a = _first_attr(estimates, ("A",))
    c = _first_attr(estimates, ("C",))
    dims = _first_attr(estimates, ("dims",))
    if a is None or c is None or dims is None:
        raise ReviewError(f"{type(estimates).__name__} lacks A, C or dims: not a CNMF-E result")
    dims = (int(dims[0]), int(dims[1]))
    a = sparse.csc_matrix(a)
    image = _first_attr(estimates, ("corr_image", "Cn", "corr", "correlation_image", "pnr_image"))
    if image is None:
        image = np.asarray(a.max(axis=1).todense()).reshape(dims)
    table = table.reset_index(drop=True)
    ids = table["component_id"].astype(int).to_numpy()
    k = a.shape[1]
    if len(ids) == k and set(ids.tolist()) == set(range(k)):
        order = np.argsort(ids)
        table = table.iloc[order].reset_index(drop=True)
    rate = frame_rate if frame_rate is not None else _first_attr(estimates, ("frame_rate",))
    return ReviewInputs(footprints=a, dims=dims, traces=np.asarray(c), image=np.asarray(image, dtype=float),
                        table=table, curation_file=Path(curation_file),
                        frame_rate=None if rate is None else float(rate))


def load_review_inputs(estimates_path: str | os.PathLike, table_path: str | os.PathLike, *,
                       curation_file: str | os.PathLike) -> ReviewInputs:
    """Read the stored ``cnmfe_estimates`` (zarr) and ``accepted_components`` (parquet) of a line."""
    from ace_neuro import storage

    estimates = storage.read_bundle(estimates_path)
    table = storage.read_table(table_path)
    return review_inputs_from_estimates(estimates, table, curation_file=curation_file)


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ReviewOutcome:
    """What the review ended with.

    Attributes
    ----------
    saved : bool
        Whether the curation file was written.
    path : Path or None
        The curation file written.
    curation : dict
        ``{"rejected": [...], "restored": [...]}`` - the manual changes.
    accepted : tuple of int
        Component ids accepted after the review.
    """

    saved: bool
    path: Path | None
    curation: Mapping[str, Any] = field(default_factory=dict)
    accepted: tuple[int, ...] = ()


class ReviewModel:
    """Decisions and selection of the review window (no drawing).

    Parameters
    ----------
    component_ids : sequence of int
    accepted : sequence of bool
        Each component's current decision (as stored in ``accepted_components``,
        i.e. with any earlier manual curation already applied).
    automatic : sequence of bool, optional
        Each component's automatic (``min_SNR`` / ``rval_thr``) decision; see
        :func:`automatic_decisions`. When omitted it is inferred from ``curation``.
    curation : mapping, optional
        The manual curation in force (``rejected`` / ``restored`` ids, ``note``).
    """

    def __init__(self, component_ids: Sequence[int], accepted: Sequence[bool], *,
                 automatic: Sequence[bool] | None = None, curation: Mapping[str, Any] | None = None):
        ids = [int(i) for i in component_ids]
        if len(ids) != len(accepted):
            raise ReviewError(f"{len(ids)} component ids but {len(accepted)} decisions")
        if len(set(ids)) != len(ids):
            raise ReviewError("component ids repeat")
        curation = curation or {}
        rejected, restored = set(_as_id_list(curation.get("rejected"))), set(_as_id_list(curation.get("restored")))
        self.ids: tuple[int, ...] = tuple(ids)
        self.decisions: dict[int, bool] = {i: bool(a) for i, a in zip(ids, accepted)}
        if automatic is not None:
            if len(automatic) != len(ids):
                raise ReviewError(f"{len(ids)} component ids but {len(automatic)} automatic decisions")
            self.automatic: dict[int, bool] = {i: bool(a) for i, a in zip(ids, automatic)}
        else:
            self.automatic = {i: True if i in rejected else False if i in restored else self.decisions[i]
                              for i in ids}
        self._initial = dict(self.decisions)
        self.note = str(curation.get("note", "") or "")
        self.selected: int | None = ids[0] if ids else None
        self.outcome: ReviewOutcome | None = None
        self._listeners: list[Callable[[], None]] = []

    # -- state -----------------------------------------------------------------------------------
    @property
    def accepted_ids(self) -> tuple[int, ...]:
        return tuple(i for i in self.ids if self.decisions[i])

    @property
    def changed(self) -> bool:
        return self.decisions != self._initial

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def curation(self) -> dict[str, Any]:
        """The manual changes the current decisions imply (what the curation file stores)."""
        return {"rejected": [i for i in self.ids if self.automatic[i] and not self.decisions[i]],
                "restored": [i for i in self.ids if not self.automatic[i] and self.decisions[i]],
                "note": self.note}

    def is_manual(self, component_id: int) -> bool:
        return self.decisions[int(component_id)] != self.automatic[int(component_id)]

    # -- callbacks ---------------------------------------------------------------------------------
    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _changed(self) -> None:
        for cb in self._listeners:
            cb()

    def _check(self, component_id: int) -> int:
        cid = int(component_id)
        if cid not in self.decisions:
            raise ReviewError(f"component {cid} is not one of the {len(self.ids)} components")
        return cid

    def select(self, component_id: int | None) -> None:
        self.selected = None if component_id is None else self._check(component_id)
        self._changed()

    def _step(self, delta: int) -> None:
        if not self.ids:
            return
        pos = 0 if self.selected is None else (self.ids.index(self.selected) + delta) % len(self.ids)
        self.select(self.ids[pos])

    def select_next(self) -> None:
        self._step(+1)

    def select_previous(self) -> None:
        self._step(-1)

    def set_decision(self, component_id: int, accepted: bool) -> None:
        self.decisions[self._check(component_id)] = bool(accepted)
        self._changed()

    def toggle(self, component_id: int | None = None) -> None:
        """Flip the decision of ``component_id`` (default: the selected component)."""
        cid = self.selected if component_id is None else component_id
        if cid is None:
            return
        cid = self._check(cid)
        self.set_decision(cid, not self.decisions[cid])

    def save(self, path: str | os.PathLike, *, table: pd.DataFrame | None = None) -> ReviewOutcome:
        """Write the curation file (atomically) and finish.

        ``table`` (the accepted_components table) lets the file record where each curated
        component is, so the decisions follow their components if a re-run renumbers them.
        """
        from ace_neuro.stages.evaluation import Curation, save_curation

        cur = self.curation()
        save_curation(Path(path), Curation(rejected=tuple(cur["rejected"]), restored=tuple(cur["restored"]),
                                           note=cur["note"]), table=table)
        self.outcome = ReviewOutcome(True, Path(path), cur, self.accepted_ids)
        self._changed()
        return self.outcome

    def close(self) -> ReviewOutcome:
        """Finish without saving (the stored selection stands)."""
        self.outcome = ReviewOutcome(False, None, self.curation(), self.accepted_ids)
        self._changed()
        return self.outcome


# --------------------------------------------------------------------------- view
ACCEPTED_COLOR = "tab:green"
REJECTED_COLOR = "tab:red"


class ReviewWindow:
    """The matplotlib view of a :class:`ReviewModel` over :class:`ReviewInputs`.

    Parameters
    ----------
    model : ReviewModel
    inputs : ReviewInputs
    figure : Figure, optional
        Where to draw (a new headless Figure if omitted).
    on_finish : callable, optional
        Called with the :class:`ReviewOutcome` after Save or Close.
    title : str
    """

    def __init__(self, model: ReviewModel, inputs: ReviewInputs, figure: Figure | None = None, *,
                 on_finish: Callable[[ReviewOutcome], None] | None = None, title: str = ""):
        from matplotlib.widgets import Button

        if tuple(model.ids) != inputs.component_ids:
            raise ReviewError("the model's component ids differ from the inputs' table")
        self.model, self.inputs = model, inputs
        self._on_finish = on_finish
        self.figure = figure if figure is not None else Figure(figsize=(12, 7), dpi=100)
        self.figure.set_layout_engine("none")
        fig = self.figure
        self.ax_image = fig.add_axes((0.04, 0.14, 0.46, 0.78))
        self.ax_image.set_title(title or "Click a component; Accept / Reject toggles it")
        img = inputs.image
        finite = img[np.isfinite(img)]
        lo, hi = np.percentile(finite, [1, 99.5]) if finite.size else (0, 1)
        self.ax_image.imshow(img, cmap="gray", origin="upper", vmin=lo, vmax=hi if hi > lo else lo + 1,
                             interpolation="nearest")
        self.ax_image.set_xticks([])
        self.ax_image.set_yticks([])
        self.contours = {cid: self._draw_contour(k) for k, cid in enumerate(model.ids)}
        self.ax_trace = fig.add_axes((0.56, 0.50, 0.41, 0.40))
        (self.trace_line,) = self.ax_trace.plot([], [], lw=0.8, color="k")
        self.ax_trace.set_xlabel("time (s)" if inputs.frame_rate else "frame")
        self.ax_trace.set_ylabel("C (a.u.)")
        self.info_text = fig.text(0.56, 0.40, "", fontsize=9, va="top")
        self.toggle_button = Button(fig.add_axes((0.56, 0.18, 0.19, 0.08)), "Accept / Reject")
        self.toggle_button.on_clicked(lambda _e: self.model.toggle())
        self.prev_button = Button(fig.add_axes((0.56, 0.06, 0.09, 0.08)), "< Prev")
        self.prev_button.on_clicked(lambda _e: self.model.select_previous())
        self.next_button = Button(fig.add_axes((0.66, 0.06, 0.09, 0.08)), "Next >")
        self.next_button.on_clicked(lambda _e: self.model.select_next())
        self.save_button = Button(fig.add_axes((0.78, 0.18, 0.19, 0.08)), "Save")
        self.save_button.on_clicked(
            lambda _e: self._finish(self.model.save(self.inputs.curation_file, table=self.inputs.table)))
        self.close_button = Button(fig.add_axes((0.78, 0.06, 0.19, 0.08)), "Close without saving")
        self.close_button.on_clicked(lambda _e: self._finish(self.model.close()))
        self.status_text = fig.text(0.04, 0.04, "", fontsize=9)
        self._cid_click = fig.canvas.mpl_connect("button_press_event", self._on_click)
        self._cid_key = fig.canvas.mpl_connect("key_press_event", self._on_key)
        model.on_change(self.refresh)
        self.refresh()

    def _draw_contour(self, index: int):
        patch, r0, c0 = self.inputs.footprint_patch(index)
        peak = patch.max()
        if peak <= 0 or min(patch.shape) < 2:
            return None
        ys = np.arange(r0, r0 + patch.shape[0])
        xs = np.arange(c0, c0 + patch.shape[1])
        return self.ax_image.contour(xs, ys, patch, levels=[0.5 * peak], linewidths=0.8)

    def component_at(self, x: float, y: float) -> int | None:
        """The component under image position (x = column, y = row): highest relative footprint weight."""
        h, w = self.inputs.dims
        col, row = int(round(x)), int(round(y))
        if not (0 <= row < h and 0 <= col < w):
            return None
        a = self.inputs.footprints
        weights = np.asarray(a[row * w + col, :].todense()).ravel()
        peaks = np.asarray(a.max(axis=0).todense()).ravel()
        rel = np.divide(weights, peaks, out=np.zeros_like(weights, dtype=float), where=peaks > 0)
        if rel.max(initial=0) <= 0:
            return None
        return self.model.ids[int(np.argmax(rel))]

    def _on_click(self, event) -> None:
        if event.inaxes is not self.ax_image or event.xdata is None or event.button != 1:
            return
        cid = self.component_at(event.xdata, event.ydata)
        if cid is not None:
            self.model.select(cid)

    def _on_key(self, event) -> None:
        actions = {" ": self.model.toggle, "t": self.model.toggle, "n": self.model.select_next,
                   "right": self.model.select_next, "p": self.model.select_previous,
                   "left": self.model.select_previous}
        action = actions.get(event.key)
        if action is not None:
            action()

    def _finish(self, outcome: ReviewOutcome) -> None:
        if self._on_finish is not None:
            self._on_finish(outcome)

    def refresh(self) -> None:
        """Redraw contours, trace and text from the model."""
        m = self.model
        for cid, cs in self.contours.items():
            if cs is None:
                continue
            cs.set_edgecolor(ACCEPTED_COLOR if m.decisions[cid] else REJECTED_COLOR)
            cs.set_linewidth(2.5 if cid == m.selected else 0.8)
        if m.selected is not None:
            k = m.ids.index(m.selected)
            trace = self.inputs.traces[k]
            t = np.arange(trace.size) / self.inputs.frame_rate if self.inputs.frame_rate else np.arange(trace.size)
            self.trace_line.set_data(t, trace)
            self.ax_trace.relim()
            self.ax_trace.autoscale_view()
            row = self.inputs.table.iloc[k]
            state = "accepted" if m.decisions[m.selected] else "rejected"
            manual = " (by hand)" if m.is_manual(m.selected) else " (automatic)"
            details = [f"component {m.selected}: {state}{manual}"]
            for col, label in (("snr", "SNR"), ("r_value", "r"), ("area_px", "area (px)")):
                if col in row.index and pd.notna(row[col]):
                    details.append(f"{label} = {float(row[col]):.3g}")
            if "reason" in row.index and isinstance(row["reason"], str) and row["reason"]:
                details.append(f"automatic test: {row['reason']}")
            self.info_text.set_text("\n".join(details))
            self.ax_trace.set_title(f"component {m.selected}", color=ACCEPTED_COLOR if m.decisions[m.selected]
                                    else REJECTED_COLOR)
        cur = m.curation()
        self.status_text.set_text(f"{len(m.accepted_ids)} of {len(m.ids)} accepted; by hand: "
                                  f"{len(cur['rejected'])} rejected, {len(cur['restored'])} restored"
                                  + (" (unsaved)" if m.changed and not m.finished else ""))
        self.figure.canvas.draw_idle()


def review_components(inputs: ReviewInputs, *, title: str = "") -> ReviewOutcome:
    """Open the review window on a line's components and wait until it is saved or closed.

    Returns
    -------
    ReviewOutcome
        ``saved`` is False when the window was closed without saving.

    Raises
    ------
    InteractiveUnavailableError
        No interactive matplotlib backend (no display).
    """
    plt = interactive_pyplot()
    model = review_model_for(inputs)
    fig = plt.figure(figsize=(13, 7.5))
    window = ReviewWindow(model, inputs, fig, on_finish=lambda _o: plt.close(fig), title=title)
    plt.show(block=True)  # the widgets live as long as ``window`` is referenced
    del window
    return model.outcome if model.outcome is not None else model.close()


def review_model_for(inputs: ReviewInputs) -> ReviewModel:
    """The model the window starts from: stored decisions, automatic ones, and the curation file's note."""
    from ace_neuro.stages.evaluation import load_curation

    curation = load_curation(inputs.curation_file)
    return ReviewModel(inputs.component_ids, inputs.table["accepted"].astype(bool).tolist(),
                       automatic=automatic_decisions(inputs.table),
                       curation={"rejected": curation.rejected, "restored": curation.restored, "note": curation.note})


__all__ = ["ReviewError", "ReviewInputs", "ReviewModel", "ReviewOutcome", "ReviewWindow", "automatic_decisions",
           "curation_file_for", "load_review_inputs", "review_components", "review_inputs_from_estimates",
           "review_model_for"]
