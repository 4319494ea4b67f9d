"""Detrend and dF/F, streamed, against in-memory NumPy references."""
from __future__ import annotations

import numpy as np
import pytest

from ace_neuro.movie import MovieStream
from ace_neuro.params import DetrendParams, DffParams
from ace_neuro.stages.detrend import DetrendError, detrend_movie, detrended_view, fit_detrend, frame_means
from ace_neuro.stages.dff import (
    DffError, DffFrames, detrend_and_dff, dff_movie, interpolation_weights, plan_baseline_blocks,
)

FPS = 10.0


class CountingFrames:
    """A numpy movie that records every read, to check streaming (no whole-movie reads)."""

    def __init__(self, array):
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.reads = []

    def __getitem__(self, key):
        first = key[0] if isinstance(key, tuple) else key
        self.reads.append(len(range(*first.indices(self.shape[0]))) if isinstance(first, slice) else 1)
        return self.array[key]


def _movie(t=200, h=6, w=5, seed=1):
    rng = np.random.default_rng(seed)
    times = np.arange(t) / FPS
    bleach = 20 * np.exp(-times / 5)[:, None, None]
    slopes = 0.5 * rng.normal(0, 1, (1, h, w))
    movie = 100 + bleach + slopes * times[:, None, None] + rng.normal(0, 3, (t, h, w))
    return movie.astype(np.float32), times


def _collect(stream: MovieStream) -> np.ndarray:
    return np.concatenate(list(stream.blocks))


# --------------------------------------------------------------------------- references
def _ref_median(m):
    means = m.astype(np.float64).mean(axis=(1, 2))
    return m - (means - np.median(means))[:, None, None]


def _ref_linear(m, t):
    y = m.astype(np.float64)
    a = np.stack([np.ones_like(t), t], axis=1)
    coef, *_ = np.linalg.lstsq(a, y.reshape(len(t), -1), rcond=None)
    fit = (a @ coef).reshape(y.shape)
    return y - fit + y.mean(axis=0)  # line removed, pixel mean kept


def _ref_dff(y, fps, secs, q, method):
    y = y.astype(np.float64)
    y = y + max(0.0, 1.0 - y.min())
    win = max(1, round(secs * fps))
    edges = list(range(0, len(y), win)) + [len(y)]
    if len(edges) > 2 and (edges[-1] - edges[-2]) * 2 < win:
        del edges[-2]
    p = np.stack([np.percentile(y[a:b], q, axis=0) for a, b in zip(edges[:-1], edges[1:])])
    centres = np.array([(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])])
    f0 = np.empty_like(y)
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            f0[:, i, j] = np.interp(np.arange(len(y)), centres, p[:, i, j])
    return (y - f0) / f0 if method == "delta_f_over_f" else (y - f0) / np.sqrt(f0)


# --------------------------------------------------------------------------- detrend
def test_median_detrend_matches_reference_and_block_size():
    m, t = _movie()
    out7 = _collect(detrend_movie(m, DetrendParams("median"), times=t, frame_rate=FPS, block_frames=7))
    out64 = _collect(detrend_movie(m, DetrendParams("median"), times=t, frame_rate=FPS, block_frames=64))
    assert out7.dtype == np.float32
    np.testing.assert_allclose(out7, _ref_median(m), rtol=1e-5)
    np.testing.assert_array_equal(out7, out64)
    # the whole-field trace is flat at its median afterwards
    after = out7.astype(np.float64).mean(axis=(1, 2))
    assert np.ptp(after) < 1e-3


def test_linear_detrend_matches_least_squares_and_keeps_the_mean():
    m, t = _movie()
    out7 = _collect(detrend_movie(m, DetrendParams("linear"), times=t, frame_rate=FPS, block_frames=7))
    out64 = _collect(detrend_movie(m, DetrendParams("linear"), times=t, frame_rate=FPS, block_frames=64))
    ref = _ref_linear(m, t)
    np.testing.assert_allclose(out7, ref, rtol=1e-5)
    np.testing.assert_allclose(out7, out64, rtol=1e-6)
    np.testing.assert_allclose(out7.mean(axis=0), m.astype(np.float64).mean(axis=0), rtol=1e-5)


def test_linear_detrend_removes_a_known_slope_using_real_times():
    # frames 50..59 dropped: times jump, and the fit must follow the times, not the frame index
    t = np.concatenate([np.arange(50), np.arange(60, 110)]) / FPS
    slope = np.linspace(-2, 3, 12).reshape(1, 3, 4)
    m = (50 + slope * t[:, None, None]).astype(np.float32)
    fit = fit_detrend(m, "linear", times=t, block_frames=16)
    np.testing.assert_allclose(fit.slopes, slope[0], rtol=1e-5)
    out = detrended_view(m, "linear", times=t)[:]
    np.testing.assert_allclose(out, np.broadcast_to(m.mean(axis=0), m.shape), rtol=1e-5)


def test_detrended_view_indexing():
    m, t = _movie(t=30)
    view = detrended_view(m, "median", times=t)
    full = view[:]
    np.testing.assert_array_equal(view[3], full[3])
    np.testing.assert_array_equal(view[-1], full[-1])
    np.testing.assert_array_equal(view[2:9:3, 1:4, 2], full[2:9:3, 1:4, 2])
    lin = detrended_view(m, "linear", times=t)
    np.testing.assert_allclose(lin[5:8, 2:4, 1:3], lin[:][5:8, 2:4, 1:3])
    with pytest.raises(IndexError, match="out of range"):
        view[30]
    with pytest.raises(TypeError):
        view[[1, 2]]


def test_detrend_disabled_and_errors():
    m, t = _movie(t=20)
    assert detrend_movie(m, DetrendParams(None), times=t, frame_rate=FPS) is None
    with pytest.raises(DetrendError, match="detrend_method = 'cubic'"):
        fit_detrend(m, "cubic")
    with pytest.raises(DetrendError, match="times has shape"):
        fit_detrend(m, "linear", times=t[:-1])
    with pytest.raises(DetrendError, match="at least 2 frames"):
        fit_detrend(m[:1], "linear")
    with pytest.raises(DetrendError, match="shape"):
        frame_means(m[0])
    with pytest.raises(DetrendError, match="NaN"):
        fit_detrend(m, "linear", times=np.full(20, np.nan))


def test_detrend_reads_blocks_only():
    m, t = _movie(t=100)
    src = CountingFrames(m)
    _collect(detrend_movie(src, DetrendParams("linear"), times=t, frame_rate=FPS, block_frames=16))
    assert max(src.reads) <= 16 and sum(src.reads) == 2 * 100


# --------------------------------------------------------------------------- dF/F
@pytest.mark.parametrize("method", ["delta_f_over_f", "delta_f_over_sqrt_f"])
@pytest.mark.parametrize("n_frames", [200, 173, 20])
def test_dff_matches_reference_and_is_block_size_independent(method, n_frames):
    m, t = _movie(t=n_frames)
    m = m - 110  # negative values: the shift must bring the minimum to 1
    params = DffParams(enabled=True, method=method, secs_window=3.3, quantile_min=8)
    out7 = _collect(dff_movie(m, params, times=t, frame_rate=FPS, block_frames=7))
    out64 = _collect(dff_movie(m, params, times=t, frame_rate=FPS, block_frames=64))
    assert out7.dtype == np.float32 and out7.shape == m.shape
    np.testing.assert_allclose(out7, _ref_dff(m, FPS, 3.3, 8, method), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out7, out64)


def test_dff_uses_the_real_frame_rate():
    # 29.97 fps, 5 s windows: 150 frames per block (round(149.85)), not 5 * 30 and not 5 * 29
    plan = plan_baseline_blocks(1000, frame_rate=29.97, secs_window=5)
    assert plan.window_frames == 150
    assert plan_baseline_blocks(1000, frame_rate=20.0, secs_window=5).window_frames == 100
    # a trailing block shorter than half a window is merged into the one before
    plan = plan_baseline_blocks(1030, frame_rate=20.0, secs_window=5)
    assert list(plan.edges) == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1030]
    assert plan.centres[0] == 49.5 and plan.centres[-1] == (900 + 1029) / 2


def test_dff_recovers_a_known_transient_on_a_drifting_baseline():
    fps = 20.0
    t = np.arange(2000) / fps
    baseline = 200 + 50 * t / t[-1]  # slow drift
    trace = baseline.copy()
    trace[1000:1010] *= 1.5  # a 50 % transient
    m = np.broadcast_to(trace[:, None, None], (2000, 2, 2)).astype(np.float32)
    params = DffParams(enabled=True, method="delta_f_over_f", secs_window=5, quantile_min=8)
    out = _collect(dff_movie(m, params, times=t, frame_rate=fps, block_frames=128))[:, 0, 0]
    assert np.abs(np.delete(out, np.s_[1000:1010])[100:-100]).max() < 0.01  # baseline ~ 0 away from edges
    np.testing.assert_allclose(out[1000:1010], 0.5, atol=0.02)


def test_dff_shift_rule():
    ones = np.full((10, 2, 2), 5.0, np.float32)
    assert DffFrames(ones, frame_rate=FPS, secs_window=1, quantile_min=8, method="delta_f_over_f").shift == 0
    low = ones - 4.7  # minimum 0.3 is lifted to 1 (the original left it)
    view = DffFrames(low, frame_rate=FPS, secs_window=1, quantile_min=8, method="delta_f_over_f")
    assert view.shift == pytest.approx(0.7, rel=1e-6)
    np.testing.assert_allclose(view.baseline(slice(None)), 1.0, rtol=1e-6)


def test_dff_memory_is_bounded():
    m, t = _movie(t=400)
    src = CountingFrames(m)
    view = DffFrames(src, frame_rate=FPS, secs_window=2, quantile_min=8, method="delta_f_over_f", block_frames=16)
    for s in range(0, 400, 16):
        view[s:s + 16]
    assert len(view._cache) <= view.cache_blocks
    assert max(src.reads) <= 20  # never more than one baseline block (20 frames) at a time
    assert sum(src.reads) == 3 * 400  # minimum pass, baseline pass, output pass


def test_detrend_then_dff_chain_matches_reference_without_intermediates():
    m, t = _movie(t=150)
    src = CountingFrames(m)
    stream = detrend_and_dff(src, DetrendParams("linear"), DffParams(enabled=True), frame_rate=FPS, times=t,
                             block_frames=16)
    out = _collect(stream)
    ref = _ref_dff(_ref_linear(m, t), FPS, 5, 8, "delta_f_over_sqrt_f")
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert max(src.reads) <= 50  # blocks of 16 frames, baseline blocks of 50: never the whole movie
    assert sum(src.reads) == 4 * 150
    assert stream.attrs["detrend_method"] == "linear" and stream.attrs["baseline_window_frames"] == 50
    assert set(stream.extras()) >= {"frame_means_before", "detrend_slopes_per_s", "dff_block_edges"}


def test_detrend_and_dff_switches():
    m, t = _movie(t=40)
    assert detrend_and_dff(m, DetrendParams(None), DffParams(enabled=False), frame_rate=FPS, times=t) is None
    only_detrend = detrend_and_dff(m, DetrendParams("median"), DffParams(enabled=False), frame_rate=FPS, times=t)
    np.testing.assert_allclose(_collect(only_detrend), _ref_median(m), rtol=1e-5)
    only_dff = detrend_and_dff(m, DetrendParams(None), DffParams(enabled=True), frame_rate=FPS, times=t)
    np.testing.assert_allclose(_collect(only_dff), _ref_dff(m, FPS, 5, 8, "delta_f_over_sqrt_f"), rtol=1e-5, atol=1e-6)


def test_interpolation_weights_are_constant_beyond_the_centres():
    centres = np.array([4.5, 14.5, 24.5])
    k, w = interpolation_weights(np.array([0, 4.5, 9.5, 14.5, 20, 29]), centres)
    np.testing.assert_array_equal(k, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(w, [0, 0, 0.5, 0, 0.55, 1])


def test_dff_errors():
    m, t = _movie(t=20)
    with pytest.raises(DffError, match="frame_rate"):
        DffFrames(m, frame_rate=0, secs_window=5, quantile_min=8, method="delta_f_over_f")
    with pytest.raises(DffError, match="secs_window"):
        DffFrames(m, frame_rate=FPS, secs_window=-1, quantile_min=8, method="delta_f_over_f")
    with pytest.raises(DffError, match="quantile_min"):
        DffFrames(m, frame_rate=FPS, secs_window=5, quantile_min=101, method="delta_f_over_f")
    with pytest.raises(DffError, match="df_over_f_method"):
        DffFrames(m, frame_rate=FPS, secs_window=5, quantile_min=8, method="dff")
    bad = m.copy()
    bad[7, 1, 1] = np.nan
    with pytest.raises(DffError, match="NaN"):
        DffFrames(bad, frame_rate=FPS, secs_window=5, quantile_min=8, method="delta_f_over_f")
    assert dff_movie(m, DffParams(enabled=False), times=t, frame_rate=FPS) is None


@pytest.mark.parametrize("q", [0, 8, 37.5, 50, 100])
@pytest.mark.parametrize("n", [1, 2, 33, 150])
def test_frame_percentile_matches_numpy(q, n):
    from ace_neuro.stages.dff import frame_percentile

    frames = np.random.default_rng(n).normal(100, 10, size=(n, 7, 9)).astype(np.float32)
    np.testing.assert_allclose(frame_percentile(frames, q), np.percentile(frames, q, axis=0), rtol=1e-6)


def test_zarr_input_streams_like_numpy(tmp_path):
    import zarr

    from ace_neuro.stages.crop import crop_box_from_coords, crop_stream

    m, t = _movie(t=90, h=8, w=7)
    z = zarr.open_array(str(tmp_path / "movie.zarr"), mode="w", shape=m.shape, chunks=(16, 8, 7), dtype=m.dtype)
    z[:] = m
    box = crop_box_from_coords((1, 7, 6, 2), m.shape)
    cropped = _collect(crop_stream(z, box, times=t, frame_rate=FPS, block_frames=13))
    np.testing.assert_array_equal(cropped, m[:, box.row0:box.row1, box.col0:box.col1])
    from_zarr = _collect(detrend_and_dff(z, DetrendParams("median"), DffParams(enabled=True), frame_rate=FPS,
                                         times=t, block_frames=13))
    from_numpy = _collect(detrend_and_dff(m, DetrendParams("median"), DffParams(enabled=True), frame_rate=FPS,
                                          times=t, block_frames=13))
    np.testing.assert_array_equal(from_zarr, from_numpy)
