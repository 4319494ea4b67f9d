"""Motion correction (native engine): known shifts recovered, streaming, borders, errors, plots.

The recordings here come from a small self-contained forward model (no other module needed):
a 1-photon-like scene (bright smooth background, dense blurred cells, dark vessels) moved by
known sub-pixel displacements with cubic B-spline interpolation, then Poisson and Gaussian
noise, quantised to uint8. ``tests/test_motion_forward_model.py`` repeats the accuracy checks
on the shared synthetic model (``ace_neuro.synthetic``).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import zarr

from ace_neuro.movie import Movie, MovieStream
from ace_neuro.params import MotionParams, ParameterError
from ace_neuro.plots.common import figure_png
from ace_neuro.plots.motion import plot_before_after, plot_shifts, plot_template_correlation
from ace_neuro.stages.motion import (MotionCorrectionError, MotionResult, check_motion_params,
                                     correct_motion, correct_motion_in_memory, estimate_template,
                                     highpass_filter, make_patch_grid, motion_result_from_arrays,
                                     shift_field)
from ace_neuro.stages.motion.warp import warp_field, warp_rigid

RIGID = MotionParams(pw_rigid=False, max_shifts=(8, 8))
PW = MotionParams(pw_rigid=True, max_shifts=(8, 8))


# --------------------------------------------------------------------------- forward model
def _scene(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.full((h, w), 50.0)
    for _ in range(5):
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.25, 0.5) * max(h, w)
        img += rng.uniform(15, 35) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    cells = np.zeros((h, w))
    n = h * w // 250
    cells[rng.integers(0, h, n), rng.integers(0, w, n)] = rng.uniform(8, 25, n) * 2 * np.pi * 9
    img += ndi.gaussian_filter(cells, 3.0)
    vessels = np.zeros((h, w), np.float32)
    for _ in range(4):
        pts = np.cumsum(rng.normal(0, 1, (40, 2)), 0)
        pts = (pts - pts.min(0)) / (np.ptp(pts, 0) + 1e-9) * [w, h]
        cv2.polylines(vessels, [pts.astype(np.int32)], False, 1.0, thickness=int(rng.integers(2, 5)))
    return img * (1 - 0.5 * np.clip(cv2.GaussianBlur(vessels, (0, 0), 1.5), 0, 1))


def make_movie(h: int, w: int, n: int, *, max_shift: float, nonrigid: float = 0.0,
               uniform: bool = False, seed: int = 0, pad: int | None = None):
    """uint8 movie (n, h, w) whose content at frame t is displaced by ``disp[t]`` (2, h, w):
    ``movie[t](y, x) = scene(y - dy, x - dx)``. Returns movie, rigid shifts (n, 2), disp."""
    rng = np.random.default_rng(seed)
    pad = int(np.ceil(max_shift + 3 * nonrigid)) + 4 if pad is None else pad
    ph, pw_ = h + 2 * pad, w + 2 * pad
    scene = _scene(ph, pw_, rng)
    if uniform:
        shifts = rng.uniform(-max_shift, max_shift, (n, 2))
    else:
        shifts = np.zeros((n, 2))
        for t in range(1, n):
            shifts[t] = np.clip(0.9 * shifts[t - 1] + rng.normal(0, max_shift / 5, 2), -max_shift, max_shift)
    yy, xx = np.mgrid[0:ph, 0:pw_].astype(np.float64)
    modes = []
    for _ in range(3):  # smooth non-rigid modes, wavelength >= the frame
        ky, kx = rng.uniform(0.5, 1.5, 2) * np.pi / np.array([ph, pw_])
        a, b = rng.uniform(0, 2 * np.pi, 2)
        modes.append([np.sin(ky * yy + a) * np.cos(kx * xx + b), np.cos(ky * yy + b) * np.sin(kx * xx + a)])
    modes = np.asarray(modes)
    coef = rng.normal(0, nonrigid / np.sqrt(3), (n, 3))
    movie = np.empty((n, h, w), np.uint8)
    disp = np.empty((n, 2, h, w), np.float32)
    crop = np.s_[pad:pad + h, pad:pad + w]
    for t in range(n):
        d = shifts[t][:, None, None] + np.tensordot(coef[t], modes, 1)
        frame = ndi.map_coordinates(scene * (1 - 0.15 * t / n), [yy - d[0], xx - d[1]], order=3, mode="mirror")
        noisy = rng.poisson(np.clip(frame[crop], 0, None)) + rng.normal(0, 1.5, (h, w))
        movie[t] = np.clip(np.rint(noisy), 0, 255)
        disp[t] = d[(slice(None),) + crop]
    return movie, shifts.astype(np.float32), disp


def content_field(disp: np.ndarray) -> np.ndarray:
    """The displacement correction must apply at template coordinates p: e(p) = d(p + e(p))."""
    h, w = disp.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    e = disp.copy()
    for _ in range(4):
        e = np.stack([cv2.remap(disp[c], xx + e[1], yy + e[0], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE) for c in (0, 1)])
    return e


def field_rmse(result: MotionResult, truth: np.ndarray, region) -> float:
    """RMSE (px) of the applied displacement vs the truth over ``region`` (slices of H, W),
    after removing each pixel's mean over time (the template's own reference shape)."""
    est = np.stack([shift_field(result, t) for t in range(result.n_frames)])
    diff = (est - truth)[(slice(None), slice(None)) + region]
    diff -= diff.mean(axis=0, keepdims=True)
    return float(np.sqrt((diff ** 2).sum(axis=1).mean()))


@pytest.fixture(scope="module")
def rigid_movie():
    return make_movie(128, 128, 150, max_shift=7.5, uniform=True, seed=1)


@pytest.fixture(scope="module")
def rigid_run(rigid_movie):
    movie, _, _ = rigid_movie
    return correct_motion_in_memory(movie, RIGID)


@pytest.fixture(scope="module")
def nonrigid_movie():
    movie, _, disp = make_movie(200, 200, 160, max_shift=4, nonrigid=1.5, seed=2)
    return movie, np.stack([content_field(d) for d in disp])


# --------------------------------------------------------------------------- accuracy
def test_rigid_recovers_subpixel_shifts_up_to_max_shifts(rigid_movie, rigid_run):
    _, shifts, _ = rigid_movie
    corrected, res = rigid_run
    assert np.abs(shifts).max() > 0.9 * RIGID.max_shifts[0]
    err = res.rigid_shifts - shifts
    offset = err.mean(axis=0)  # the template's own position (centred on the median shift)
    assert np.all(np.abs(offset) < 1.0)
    rmse = np.sqrt(((err - offset) ** 2).sum(axis=1).mean())
    assert rmse <= 0.1, rmse
    assert corrected.dtype == np.float32 and corrected.shape == rigid_movie[0].shape


def test_rigid_correction_aligns_frames(rigid_run):
    _, res = rigid_run
    assert np.median(res.corr_after) > 0.95 > np.median(res.corr_before) + 0.2
    assert np.median(res.residual_shift) < 0.1
    assert res.patch_shifts is None and res.patch_centers is None


def test_piecewise_rigid_follows_smooth_nonrigid_field(nonrigid_movie):
    movie, truth = nonrigid_movie
    _, pw = correct_motion_in_memory(movie, PW)
    _, rigid = correct_motion_in_memory(movie, RIGID)
    grid = make_patch_grid(movie.shape[1:], PW)
    c = grid.centers
    hull = (slice(int(c[0, 0, 0]), int(c[-1, -1, 0]) + 1), slice(int(c[0, 0, 1]), int(c[-1, -1, 1]) + 1))
    interior = (slice(8, -8), slice(8, -8))
    assert field_rmse(pw, truth, hull) <= 0.3
    pw_all, rigid_all = field_rmse(pw, truth, interior), field_rmse(rigid, truth, interior)
    assert pw_all < 0.6 * rigid_all, (pw_all, rigid_all)
    assert pw.patch_shifts.shape == (movie.shape[0],) + grid.n_patches + (2,)
    assert np.median(pw.corr_after) > np.median(rigid.corr_after)


def test_sign_convention_content_displacement():
    movie, shifts, _ = make_movie(96, 96, 6, max_shift=3.0, uniform=True, seed=3, pad=8)
    still, _, _ = make_movie(96, 96, 1, max_shift=0.0, seed=3, pad=8)
    # same scene (same seed) without motion: use its high-passed first frame as the template
    template = highpass_filter(still[0], RIGID.gSig_filt)
    _, res = correct_motion_in_memory(movie, RIGID, template=template)
    np.testing.assert_allclose(res.rigid_shifts, shifts, atol=0.35)
    assert np.sign(res.rigid_shifts[np.abs(shifts) > 1]).tolist() == np.sign(shifts[np.abs(shifts) > 1]).tolist()


def test_fourier_application_matches_opencv(rigid_movie, rigid_run):
    movie, _, _ = rigid_movie
    corrected, res = rigid_run
    p = dataclasses.replace(RIGID, shifts_opencv=False)
    corrected_f, res_f = correct_motion_in_memory(movie, p, template=res.template)
    np.testing.assert_allclose(res_f.rigid_shifts, res.rigid_shifts, atol=1e-4)
    # the two interpolators treat pixel noise differently: compare smoothed mean projections
    diff = cv2.GaussianBlur(corrected_f.mean(0) - corrected.mean(0), (0, 0), 2.0)[10:-10, 10:-10]
    assert np.abs(diff).max() < 0.5
    assert np.median(res_f.residual_shift) < 0.1


def test_no_highpass_and_other_dtypes(rigid_movie):
    movie, shifts, _ = rigid_movie
    p = dataclasses.replace(RIGID, gSig_filt=None)
    for frames in (movie[:60].astype(np.uint16) * 200, movie[:60].astype(np.float32)):
        _, res = correct_motion_in_memory(frames, p)
        err = res.rigid_shifts - shifts[:60]
        assert np.sqrt(((err - err.mean(0)) ** 2).sum(1).mean()) < 0.2


def test_nonfinite_pixels_do_not_break_registration(rigid_movie):
    movie, shifts, _ = rigid_movie
    frames = movie[:40].astype(np.float32)
    frames[5, 10:20, 10:20] = np.nan
    frames[7, 0, 0] = np.inf
    _, res = correct_motion_in_memory(frames, RIGID)
    err = res.rigid_shifts - shifts[:40]
    assert np.all(np.isfinite(res.rigid_shifts))
    assert np.abs(err - np.median(err, axis=0)).max() < 0.5


# --------------------------------------------------------------------------- warps and grid
def _smooth_image(seed: int = 0, size: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)  # periodic, so that its Fourier shift is exact
    return ndi.gaussian_filter(rng.random((size, size)) * 100, 3.0, mode="wrap").astype(np.float32)


def test_warp_rigid_moves_content_by_the_subpixel_amount():
    img = _smooth_image()
    f = np.fft.fft2(img)
    ky, kx = np.fft.fftfreq(128)[:, None], np.fft.fftfreq(128)[None, :]
    for dy, dx in [(0.3, -0.1), (2.75, -3.4)]:
        exact = np.fft.ifft2(f * np.exp(2j * np.pi * (ky * dy + kx * dx))).real  # img(y + dy, x + dx)
        inner = np.s_[10:-10, 10:-10]
        assert np.abs(warp_rigid(img, (dy, dx))[inner] - exact[inner]).max() < 0.03 * img.std()
        field = np.empty((2, 128, 128), np.float32)
        field[0], field[1] = dy, dx
        assert np.abs(warp_field(img, field)[inner] - exact[inner]).max() < 0.1 * img.std()


def test_patch_grid_covers_frame_and_interpolates_exactly_constant_and_linear_fields():
    grid = make_patch_grid((200, 150), PW)
    assert grid.size == (72, 72)
    assert grid.starts_y[0] >= 0 and grid.starts_y[-1] + 72 <= 200 and grid.starts_y[-1] + 72 >= 200 - len(grid.starts_y)
    assert np.all(np.diff(grid.starts_x) <= PW.strides[1])
    const = np.full(grid.n_patches + (2,), (1.5, -0.5), np.float32)
    np.testing.assert_allclose(grid.field(const)[:, 0, 0], (1.5, -0.5), atol=1e-5)
    np.testing.assert_allclose(grid.field(const)[:, -1, -1], (1.5, -0.5), atol=1e-5)
    c = grid.centers
    linear = np.stack([0.01 * c[..., 0], -0.02 * c[..., 1]], axis=-1)
    f = grid.field(linear)
    yy, xx = np.mgrid[0:200, 0:150]
    np.testing.assert_allclose(f[0], 0.01 * yy, atol=1e-3)
    np.testing.assert_allclose(f[1], -0.02 * xx, atol=1e-3)


def test_highpass_removes_background_and_keeps_cells():
    yy, xx = np.mgrid[0:96, 0:96]
    background = 80 + 30 * np.exp(-((yy - 30) ** 2 + (xx - 60) ** 2) / (2 * 40.0 ** 2))
    cell = 20 * np.exp(-((yy - 48) ** 2 + (xx - 48) ** 2) / (2 * 3.0 ** 2))
    hp = highpass_filter(background + cell, (7, 7))
    assert hp.dtype == np.float32
    assert np.abs(highpass_filter(np.full((64, 64), 100.0), (7, 7))).max() < 1e-3
    assert hp[48, 48] > 5 * np.abs(hp[20:30, 70:80]).max()


# --------------------------------------------------------------------------- streaming
class CountingFrames:
    """Array-like that records how many frames each read asks for."""

    def __init__(self, frames: np.ndarray):
        self._frames = frames
        self.shape = frames.shape
        self.dtype = frames.dtype
        self.largest_read = 0

    def __getitem__(self, key):
        out = self._frames[key]
        n = out.shape[0] if out.ndim == 3 else 1
        self.largest_read = max(self.largest_read, n)
        return out


def test_streams_blocks_from_zarr_and_matches_in_memory(tmp_path, rigid_movie, rigid_run):
    movie, _, _ = rigid_movie
    corrected, res = rigid_run
    z = zarr.open_array(str(tmp_path / "movie.zarr"), mode="w", shape=movie.shape, chunks=(32, 128, 128),
                        dtype=movie.dtype)
    z[:] = movie
    times = np.arange(movie.shape[0]) / 20.0 + 3.0
    stream = correct_motion(z, RIGID, times=times, block_frames=40, template=res.template)
    assert isinstance(stream, MovieStream)
    assert stream.shape == movie.shape and stream.dtype == np.float32 and stream.frame_rate == pytest.approx(20.0)
    np.testing.assert_array_equal(stream.times, times)
    with pytest.raises(MotionCorrectionError, match="consume all blocks"):
        stream.extras()
    blocks = list(stream.blocks)
    assert [len(b) for b in blocks] == [40, 40, 40, 30]
    np.testing.assert_allclose(np.concatenate(blocks), corrected, atol=1e-4)
    extras = stream.extras()
    assert set(extras) >= {"template", "rigid_shifts", "corr_before", "corr_after", "residual_shift"}
    assert "patch_shifts" not in extras
    np.testing.assert_allclose(extras["rigid_shifts"], res.rigid_shifts, atol=1e-5)
    assert stream.attrs["engine"] == "native"


def test_never_reads_the_whole_movie(rigid_movie):
    movie, _, _ = rigid_movie
    frames = CountingFrames(movie)
    stream = correct_motion(Movie(frames, np.arange(len(movie)) / 30.0, 30.0), RIGID, block_frames=32,
                            n_template_frames=60)
    for _ in stream.blocks:
        pass
    assert frames.largest_read <= 32
    assert stream.frame_rate == 30.0


def test_result_round_trip_and_piecewise_extras(nonrigid_movie):
    movie = nonrigid_movie[0][:40]
    stream = correct_motion(movie, PW, frame_rate=10.0, block_frames=16)
    out = np.concatenate(list(stream.blocks))
    arrays = stream.extras()
    assert {"patch_shifts", "patch_centers", "mean_before", "mean_after"} <= set(arrays)
    res = motion_result_from_arrays(arrays, PW)
    assert res.patch_shifts.shape[0] == 40 and res.patch_centers.shape == res.patch_shifts.shape[1:]
    assert out.shape == movie.shape and np.isfinite(out).all()
    np.testing.assert_allclose(res.mean_after, out.mean(axis=0), rtol=1e-4, atol=1e-3)
    with pytest.raises(MotionCorrectionError, match="lack"):
        motion_result_from_arrays({k: v for k, v in arrays.items() if k != "rigid_shifts"}, PW)


# --------------------------------------------------------------------------- borders
@pytest.mark.parametrize("mode", ["nan", "zero", "copy"])
def test_border_modes(rigid_movie, rigid_run, mode):
    movie, _, _ = rigid_movie
    _, res = rigid_run
    p = dataclasses.replace(RIGID, border_nan=mode)
    corrected, res_m = correct_motion_in_memory(movie[:30], p, template=res.template)
    t = int(np.argmax(res_m.rigid_shifts[:, 0]))  # largest positive dy: bottom rows have no source
    dy = float(res_m.rigid_shifts[t, 0])
    assert dy > 2
    first_missing = int(np.floor(128 - 1 - dy + 1e-3)) + 1
    bottom = corrected[t, first_missing:, 20:-20]
    if mode == "nan":
        assert np.isnan(bottom).all() and np.isfinite(corrected[t, :first_missing - 1, 20:-20]).all()
    elif mode == "zero":
        assert (bottom == 0).all()
    else:  # every row past the recorded frame repeats the last recorded row
        assert np.isfinite(corrected).all()
        beyond = corrected[t, first_missing + 2:, 20:-20]
        np.testing.assert_allclose(beyond, np.broadcast_to(beyond[0], beyond.shape), atol=1e-3)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("params, match", [
    (MotionParams(strides=(48, 48), overlaps=(24, 24)), "strides \\+ overlaps = 72 x 72 px .* 60 x 60"),
    (MotionParams(max_shifts=(40, 15)), "max_shifts .* frame is 60 x 60"),
    (MotionParams(strides=(20, 20), overlaps=(10, 10), max_deviation_rigid=14), "max_deviation_rigid"),
])
def test_invalid_parameters_are_reported_with_the_frame_size(params, match):
    movie = np.zeros((5, 60, 60), np.uint8)
    with pytest.raises(MotionCorrectionError, match=match):
        correct_motion(movie, params, frame_rate=30.0)
    with pytest.raises(ParameterError):
        check_motion_params(params, (60, 60))


@pytest.mark.parametrize("values, match", [
    ({"strides": (24, 24), "overlaps": (24, 24)}, "overlaps .* smaller than strides"),
    ({"border_nan": "mirror"}, "border_nan"),
    ({"max_shifts": (-1, 3)}, "max_shifts"),
])
def test_parameters_built_by_hand_are_validated(values, match):
    with pytest.raises(ParameterError, match=match):
        MotionParams(**values)


def test_invalid_inputs():
    movie = np.zeros((5, 64, 64), np.uint8)
    with pytest.raises(MotionCorrectionError, match="frame, height, width"):
        correct_motion(np.zeros((64, 64)), RIGID, frame_rate=30.0)
    with pytest.raises(MotionCorrectionError, match="frame_rate"):
        correct_motion(movie, RIGID)
    with pytest.raises(MotionCorrectionError, match="times has shape"):
        correct_motion(movie, RIGID, times=np.arange(3.0))
    with pytest.raises(MotionCorrectionError, match="template"):
        correct_motion(movie, RIGID, frame_rate=30.0, template=np.zeros((32, 32)))
    with pytest.raises(MotionCorrectionError, match="integers or floats"):
        correct_motion(np.zeros((5, 64, 64), complex), RIGID, frame_rate=30.0)
    with pytest.raises(MotionCorrectionError, match="n_frames"):
        estimate_template(movie, RIGID, n_frames=0)


# --------------------------------------------------------------------------- plots
def test_quality_figures(nonrigid_movie, rigid_run):
    movie = nonrigid_movie[0][:30]
    _, res = correct_motion_in_memory(movie, PW)
    for fig in (plot_shifts(res, np.arange(30) / 30.0), plot_shifts(rigid_run[1]),
                plot_before_after(res.mean_before, res.mean_after), plot_template_correlation(res)):
        png = figure_png(fig)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    with pytest.raises(ValueError, match="times"):
        plot_shifts(res, np.arange(3.0))
    with pytest.raises(ValueError, match="one shape"):
        plot_before_after(res.mean_before, res.mean_after[:10])
