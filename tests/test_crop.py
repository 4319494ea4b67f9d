"""Crop and the streaming projections."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from ace_neuro.movie import MovieStream
from ace_neuro.params import CropParams
from ace_neuro.stages.crop import (
    PROJECTION_KINDS, CropBox, CropError, apply_crop, compute_projections, crop_box_from_coords, crop_movie,
    crop_stream, projection,
)


def test_spec_example_608():
    box = crop_box_from_coords((67, 503, 555, 61), (608, 608))
    assert box == CropBox(row0=105, row1=547, col0=67, col1=555)
    assert box.shape == (442, 488)
    rows, cols = box.slices
    kept_rows = np.arange(608)[rows]
    kept_cols = np.arange(608)[cols]
    assert (kept_rows[0], kept_rows[-1]) == (105, 546)
    assert (kept_cols[0], kept_cols[-1]) == (67, 554)


@pytest.mark.parametrize("coords", [(67, 503, 555, 61), (555, 61, 67, 503), (67, 61, 555, 503), (555, 503, 67, 61)])
def test_corner_order_does_not_matter(coords):
    assert crop_box_from_coords(coords, (608, 608)) == CropBox(105, 547, 67, 555)


def test_bottom_left_origin_on_a_non_square_frame():
    # 480 rows x 752 columns (V3). A box touching the bottom edge (y = 0) keeps the last rows.
    box = crop_box_from_coords((10, 0, 30, 20), (480, 752))
    assert box == CropBox(row0=460, row1=480, col0=10, col1=30)
    frame = np.arange(480 * 752).reshape(480, 752)
    crop = frame[box.slices]
    assert crop[-1, 0] == frame[479, 10]  # bottom-left pixel of the box is the frame's bottom row


def test_box_round_trips_to_coords():
    box = crop_box_from_coords((67, 503, 555, 61), (608, 608))
    assert crop_box_from_coords(box.to_coords(608), (608, 608)) == box


@pytest.mark.parametrize("coords, needle", [
    ((0, 0, 609, 10), "x1=609"),
    ((-1, 0, 10, 10), "x0=-1"),
    ((0, 0, 10, 700), "y1=700"),
])
def test_out_of_frame_is_an_error_naming_frame_and_coords(coords, needle):
    with pytest.raises(CropError) as err:
        crop_box_from_coords(coords, (608, 608))
    msg = str(err.value)
    assert "608 x 608" in msg and needle in msg and str(tuple(coords)) in msg


@pytest.mark.parametrize("coords", [(10, 5, 10, 50), (3, 40, 90, 40)])
def test_empty_box_is_an_error(coords):
    with pytest.raises(CropError, match=r"empty box on the 100 x 120"):
        crop_box_from_coords(coords, (100, 120))


@pytest.mark.parametrize("coords", [(1, 2, 3), (1.5, 2, 3, 4), "1,2,3,4", (True, 2, 3, 4)])
def test_malformed_coords(coords):
    with pytest.raises(CropError, match="four whole numbers"):
        crop_box_from_coords(coords, (100, 120))


def test_crop_error_is_a_value_error():
    assert issubclass(CropError, ValueError)


def _movie(t=23, h=17, w=19, dtype=np.uint16):
    rng = np.random.default_rng(0)
    return rng.integers(0, 4000, size=(t, h, w)).astype(dtype)


@pytest.mark.parametrize("block_frames", [1, 7, 64])
def test_crop_movie_streams_blocks_in_native_dtype(block_frames):
    movie = _movie()
    box = crop_box_from_coords((2, 15, 11, 4), movie.shape)
    blocks = list(crop_movie(movie, box, block_frames=block_frames))
    assert all(b.shape[0] <= block_frames for b in blocks)
    out = np.concatenate(blocks)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, movie[:, 2:13, 2:11])


def test_crop_stream_passes_times_and_rate():
    movie = _movie()
    times = np.arange(23) / 29.97
    box = crop_box_from_coords((0, 17, 19, 0), movie.shape)  # the full frame
    stream = crop_stream(movie, box, times=times, frame_rate=29.97, block_frames=5)
    assert isinstance(stream, MovieStream)
    assert stream.shape == movie.shape and stream.dtype == movie.dtype
    assert stream.frame_rate == 29.97 and stream.times is not None
    np.testing.assert_array_equal(np.concatenate(list(stream.blocks)), movie)


def test_crop_movie_rejects_box_larger_than_frame():
    with pytest.raises(CropError, match="does not fit"):
        list(crop_movie(_movie(), CropBox(0, 50, 0, 5)))


def test_apply_crop_pass_through_and_warning(caplog):
    movie = _movie()
    times = np.arange(23) / 30.0
    assert apply_crop(movie, CropParams(enabled=False, coords=(1, 2, 3, 4)), times=times, frame_rate=30.0) is None
    with caplog.at_level(logging.WARNING):
        assert apply_crop(movie, CropParams(coords=None), times=times, frame_rate=30.0) is None
    assert "not cropped" in caplog.text
    stream = apply_crop(movie, CropParams(coords=(2, 15, 11, 4)), times=times, frame_rate=30.0, block_frames=4)
    np.testing.assert_array_equal(np.concatenate(list(stream.blocks)), movie[:, 2:13, 2:11])
    with pytest.raises(CropError, match="17 x 19"):
        apply_crop(movie, CropParams(coords=(2, 15, 40, 4)), times=times, frame_rate=30.0)


@pytest.mark.parametrize("block_frames", [1, 7, 64])
def test_projections_match_numpy(block_frames):
    movie = _movie(dtype=np.uint8 if block_frames == 1 else np.uint16)
    expected = {"max": movie.max(0), "min": movie.min(0), "mean": movie.mean(0), "std": movie.std(0),
                "median": np.median(movie, 0), "range": movie.max(0).astype(np.int64) - movie.min(0)}
    for kind in PROJECTION_KINDS:
        np.testing.assert_allclose(projection(movie, kind, block_frames=block_frames), expected[kind],
                                   rtol=1e-12, err_msg=kind)
    every = compute_projections(movie, block_frames=block_frames)
    for kind in PROJECTION_KINDS:
        np.testing.assert_allclose(every.get(kind), expected[kind], rtol=1e-12, err_msg=kind)
    assert projection(movie, "max").dtype == movie.dtype


def test_range_of_uint8_does_not_wrap():
    movie = np.zeros((3, 2, 2), np.uint8)
    movie[1] = 255
    assert projection(movie, "range").max() == 255


def test_std_is_stable_for_large_offsets():
    rng = np.random.default_rng(3)
    movie = (1e6 + rng.normal(0, 1, size=(200, 4, 4)))
    np.testing.assert_allclose(projection(movie, "std", block_frames=9), movie.std(0), rtol=1e-6)


def test_projection_subsample_uses_evenly_spaced_frames():
    movie = np.arange(100, dtype=np.float32).reshape(100, 1, 1) * np.ones((1, 2, 2), np.float32)
    assert projection(movie, "max", n_frames=10)[0, 0] == 99  # last frame included
    assert projection(movie, "mean", n_frames=2)[0, 0] == pytest.approx(49.5)
    assert projection(movie, "median", n_frames=3)[0, 0] == pytest.approx(50)


def test_projection_errors():
    with pytest.raises(ValueError, match="not one of"):
        projection(_movie(), "mode")
    with pytest.raises(ValueError, match="no frames"):
        projection(np.zeros((0, 3, 3)), "max")
    with pytest.raises(ValueError, match="n_frames"):
        projection(_movie(), "max", n_frames=0)


def test_crop_preview_figure_draws_the_box_in_crop_coordinates():
    from matplotlib.patches import Rectangle

    from ace_neuro.plots.common import figure_png
    from ace_neuro.plots.crop import plot_crop_preview

    box = crop_box_from_coords((67, 503, 555, 61), (608, 608))
    fig = plot_crop_preview(np.random.default_rng(0).random((608, 608)), box, kind="std")
    rect = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)][0]
    assert rect.get_xy() == (67, 61) and rect.get_width() == 488 and rect.get_height() == 442
    assert figure_png(fig).startswith(b"\x89PNG")
