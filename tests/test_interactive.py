"""Crop and component-review windows, driven with synthetic mouse events under Agg (no display, no human)."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.backend_bases import KeyEvent, MouseEvent
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import sparse

from ace_neuro.interactive import InteractiveUnavailableError
from ace_neuro.interactive.crop_window import CropSelectorModel, CropWindow, CropWindowError, select_crop
from ace_neuro.interactive.review_window import (ReviewError, ReviewInputs, ReviewModel, ReviewWindow,
                                                 automatic_decisions, curation_file_for, review_components,
                                                 review_model_for)
from ace_neuro.stages.crop import crop_box_from_coords

matplotlib.use("Agg")


# --------------------------------------------------------------------------- event helpers
def agg_figure(w=9, h=6):
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _send(fig, name, x, y, button=1):
    fig.canvas.callbacks.process(name, MouseEvent(name, fig.canvas, x, y, button=button))


def drag(fig, ax, start, end):
    """Press at ``start``, move to and release at ``end`` (data coordinates of ``ax``)."""
    (x0, y0), (x1, y1) = ax.transData.transform(start), ax.transData.transform(end)
    _send(fig, "button_press_event", x0, y0)
    _send(fig, "motion_notify_event", (x0 + x1) / 2, (y0 + y1) / 2)
    _send(fig, "motion_notify_event", x1, y1)
    _send(fig, "button_release_event", x1, y1)


def click_data(fig, ax, x, y):
    px, py = ax.transData.transform((x, y))
    _send(fig, "button_press_event", px, py)
    _send(fig, "button_release_event", px, py)


def click_axes(fig, ax):
    bb = ax.get_window_extent()
    _send(fig, "button_press_event", (bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2)
    _send(fig, "button_release_event", (bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2)


def click_radio_label(fig, radio, label):
    text = next(t for t in radio.labels if t.get_text() == label)
    bb = text.get_window_extent(fig.canvas.get_renderer())
    _send(fig, "button_press_event", (bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2)
    _send(fig, "button_release_event", (bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2)


def press_key(fig, key):
    fig.canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", fig.canvas, key, x=0, y=0))


# --------------------------------------------------------------------------- crop window
H, W = 60, 80


@pytest.fixture
def projections():
    rng = np.random.default_rng(1)
    mx = rng.random((H, W))
    mx[8:20, 50:70] += 10.0  # a bright block: rows 8..19, columns 50..69 (array coordinates)
    return {"max": mx, "mean": mx / 2, "std": rng.random((H, W))}


def test_model_rectangle_is_in_spec_coordinates(projections):
    m = CropSelectorModel(projections)
    # crop coordinates: origin bottom-left, y up. Rows 8..19 are y in (H-20, H-8] = (40, 52]
    m.set_rectangle(50.2, 51.6, 69.7, 40.3)
    assert m.coords == (50, 52, 70, 40)  # (left, top, right, bottom)
    box = m.box
    assert (box.row0, box.row1, box.col0, box.col1) == (8, 20, 50, 70)
    assert box == crop_box_from_coords(m.coords, (H, W))
    # corners in any order give the same crop
    m.set_rectangle(69.7, 40.3, 50.2, 51.6)
    assert m.coords == (50, 52, 70, 40)


def test_model_clips_to_frame_and_rejects_empty(projections):
    m = CropSelectorModel(projections)
    m.set_rectangle(-5, -3, 200, 500)
    assert m.coords == (0, H, W, 0)
    m.set_rectangle(10.2, 10, 10.4, 30)  # narrower than a pixel: no selection, never an empty crop
    assert m.coords is None and "empty" in m.status
    assert m.accept() is None and not m.finished and "No rectangle" in m.status


def test_model_cancel_means_no_crop(projections):
    m = CropSelectorModel(projections, coords=(67 % W, 50, 70, 10))
    choice = m.cancel()
    assert choice.cancelled and choice.coords is None and choice.box is None


def test_model_validation(projections):
    with pytest.raises(CropWindowError, match="one of the projections"):
        CropSelectorModel(projections, kind="median")
    with pytest.raises(CropWindowError, match="one shape"):
        CropSelectorModel({"max": np.zeros((4, 5)), "mean": np.zeros((5, 4))})
    with pytest.raises(CropWindowError, match="empty"):
        CropSelectorModel({})
    with pytest.raises(CropWindowError, match="outside"):
        CropSelectorModel(projections, coords=(0, 0, 500, 10))


def test_window_drag_select_projection_and_crop(projections):
    fig = agg_figure()
    chosen = []
    m = CropSelectorModel(projections)
    win = CropWindow(m, fig, on_finish=chosen.append)
    fig.canvas.draw()
    # the image looks like the frame (row 0 on top) while the axes are in crop coordinates
    assert win.artist.get_extent() == [0, W, 0, H]
    assert win.ax_image.get_ylim()[1] > win.ax_image.get_ylim()[0]  # y grows upwards
    drag(fig, win.ax_image, (49.8, 52.3), (70.2, 39.8))
    assert m.coords == (50, 52, 70, 40)
    assert win.box_patch.get_visible() and win.box_patch.get_width() == 20
    click_radio_label(fig, win.radio, "std")
    assert m.kind == "std"
    np.testing.assert_array_equal(win.artist.get_array(), projections["std"])
    click_axes(fig, win.crop_button.ax)
    assert len(chosen) == 1 and chosen[0].coords == (50, 52, 70, 40) and chosen[0].projection == "std"
    # the chosen box holds the bright block exactly
    crop = projections["max"][chosen[0].box.slices]
    assert crop.shape == (12, 20) and crop.min() >= 10


def test_window_clear_then_no_crop(projections):
    fig = agg_figure()
    chosen = []
    m = CropSelectorModel(projections)
    win = CropWindow(m, fig, on_finish=chosen.append)
    fig.canvas.draw()
    drag(fig, win.ax_image, (10, 10), (30, 30))
    assert m.coords is not None
    click_axes(fig, win.clear_button.ax)
    assert m.coords is None and not win.box_patch.get_visible()
    click_axes(fig, win.crop_button.ax)  # nothing to crop to: the window stays open
    assert chosen == [] and "No rectangle" in win.status_text.get_text()
    click_axes(fig, win.no_crop_button.ax)
    assert len(chosen) == 1 and chosen[0].cancelled


def test_select_crop_without_display_is_a_clear_error(projections):
    with pytest.raises(InteractiveUnavailableError, match="--headless"):
        select_crop(projections)


# --------------------------------------------------------------------------- review window
RH, RW = 40, 50
CENTRES = [(10, 10), (20, 35), (30, 15), (10, 40)]


@pytest.fixture
def review_inputs(tmp_path):
    yy, xx = np.mgrid[:RH, :RW]
    fps = []
    for cy, cx in CENTRES:
        f = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.0 ** 2))
        f[f < 0.05] = 0
        fps.append(f.ravel())
    a = sparse.csc_matrix(np.stack(fps, axis=1))
    traces = np.vstack([np.sin(np.arange(200) / (5 + k)) for k in range(len(CENTRES))]).astype(np.float32)
    table = pd.DataFrame({"component_id": [0, 1, 2, 3], "accepted": [True, False, True, True],
                          "centroid_y": [float(c[0]) for c in CENTRES], "centroid_x": [float(c[1]) for c in CENTRES],
                          "snr": [6.0, 1.9, 4.0, 8.0], "r_value": [0.9, 0.95, 0.88, 0.97],
                          "reason": ["passed", "snr 1.9 < min_SNR 2.5", "passed", "passed"]})
    return ReviewInputs(footprints=a, dims=(RH, RW), traces=traces, image=np.zeros((RH, RW)), table=table,
                        curation_file=curation_file_for(tmp_path / "project", 96), frame_rate=20.0)


def test_curation_file_lives_with_the_project(tmp_path):
    assert curation_file_for(tmp_path, 96) == tmp_path / "curation" / "96.json"


def test_review_model_curation_is_relative_to_the_automatic_decision():
    # stored decisions already include an earlier curation: 2 was rejected by hand, 1 restored by hand
    m = ReviewModel([0, 1, 2, 3], [True, True, False, True], curation={"rejected": [2], "restored": [1]})
    assert m.automatic == {0: True, 1: False, 2: True, 3: True}
    assert m.curation()["rejected"] == [2] and m.curation()["restored"] == [1] and not m.changed
    m.toggle(2)  # back to the automatic decision: no longer a manual change
    m.toggle(0)
    assert m.curation()["rejected"] == [0] and m.curation()["restored"] == [1]
    assert m.accepted_ids == (1, 2, 3) and m.changed
    with pytest.raises(ReviewError, match="not one of"):
        m.select(17)


def test_review_window_click_toggle_keys_and_close(review_inputs):
    fig = agg_figure(12, 7)
    outcomes = []
    m = ReviewModel(review_inputs.component_ids, review_inputs.table["accepted"].tolist())
    win = ReviewWindow(m, review_inputs, fig, on_finish=outcomes.append)
    fig.canvas.draw()
    assert set(win.contours) == {0, 1, 2, 3}
    click_data(fig, win.ax_image, 35, 20)  # x = column 35, y = row 20: component 1
    assert m.selected == 1
    np.testing.assert_allclose(win.trace_line.get_ydata(), review_inputs.traces[1])
    np.testing.assert_allclose(win.trace_line.get_xdata()[:3], [0, 0.05, 0.1])  # seconds at 20 fps
    assert "rejected" in win.info_text.get_text() and "snr 1.9" in win.info_text.get_text()
    click_axes(fig, win.toggle_button.ax)
    assert m.decisions[1] is True and m.curation()["restored"] == [1]
    assert matplotlib.colors.same_color(win.contours[1].get_edgecolor()[0], "tab:green")
    click_axes(fig, win.next_button.ax)
    assert m.selected == 2
    press_key(fig, " ")  # space toggles the selected component
    assert m.decisions[2] is False
    assert matplotlib.colors.same_color(win.contours[2].get_edgecolor()[0], "tab:red")
    click_axes(fig, win.prev_button.ax)
    assert m.selected == 1
    click_axes(fig, win.close_button.ax)
    assert len(outcomes) == 1 and not outcomes[0].saved and outcomes[0].path is None
    assert not review_inputs.curation_file.exists()


def test_review_inputs_validation(review_inputs):
    with pytest.raises(ReviewError, match="rows for 4 components"):
        ReviewInputs(review_inputs.footprints, review_inputs.dims, review_inputs.traces, review_inputs.image,
                     review_inputs.table.iloc[:3], review_inputs.curation_file)
    with pytest.raises(ReviewError, match="dims"):
        ReviewInputs(review_inputs.footprints, (RH, RW + 1), review_inputs.traces, np.zeros((RH, RW + 1)),
                     review_inputs.table, review_inputs.curation_file)


def test_review_components_without_display_is_a_clear_error(review_inputs):
    with pytest.raises(InteractiveUnavailableError, match="--headless"):
        review_components(review_inputs)


def test_review_saves_a_curation_the_evaluation_applies(review_inputs):
    from ace_neuro.stages.evaluation import apply_curation, load_curation

    fig = agg_figure(12, 7)
    outcomes = []
    model = review_model_for(review_inputs)  # no curation file yet: automatic decisions only
    win = ReviewWindow(model, review_inputs, fig, on_finish=outcomes.append)
    fig.canvas.draw()
    click_data(fig, win.ax_image, 35, 20)  # restore component 1 (failed min_SNR)
    click_axes(fig, win.toggle_button.ax)
    click_data(fig, win.ax_image, 40, 10)  # reject component 3 (x = 40, y = 10)
    assert model.selected == 3
    click_axes(fig, win.toggle_button.ax)
    click_axes(fig, win.save_button.ax)
    (outcome,) = outcomes
    assert outcome.saved and outcome.path == review_inputs.curation_file and outcome.accepted == (0, 1, 2)
    stored = load_curation(review_inputs.curation_file)
    assert stored.rejected == (3,) and stored.restored == (1,)
    assert stored.centroids[3] == (10.0, 40.0)  # decisions follow their component after a re-run
    curated = apply_curation(review_inputs.table, stored)
    assert curated.loc[curated["accepted"], "component_id"].tolist() == [0, 1, 2]
    # reopening the window on the curated table: the automatic decisions are recovered from the reasons
    reopened = ReviewInputs(review_inputs.footprints, review_inputs.dims, review_inputs.traces, review_inputs.image,
                            curated, review_inputs.curation_file)
    assert automatic_decisions(curated) == [True, False, True, True]
    again = review_model_for(reopened)
    assert again.curation()["rejected"] == [3] and again.curation()["restored"] == [1] and not again.changed
    again.toggle(3)  # undo the manual rejection: back to automatic
    assert again.curation()["rejected"] == [] and again.changed
