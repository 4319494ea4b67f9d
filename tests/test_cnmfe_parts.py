"""CNMF-E building blocks on toy movies built here (summary images, ring model, init, merge, patches)."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.signal import lfilter

from ace_neuro.stages.cnmfe.background import RingFilter, RingModel, ring_offsets, ring_radius
from ace_neuro.stages.cnmfe.boxsums import BoxSums
from ace_neuro.stages.cnmfe.errors import CnmfeInputError, CnmfeParameterError
from ace_neuro.stages.cnmfe.init import extract_seeds
from ace_neuro.stages.cnmfe.merge import find_duplicates, footprint_centroids, merge_components
from ace_neuro.stages.cnmfe.patches import assign_to_patches, cap_per_patch, patch_grid
from ace_neuro.stages.cnmfe.stream import FrameSource, downsample_space, upsample_space, validate_frames
from ace_neuro.stages.cnmfe.suggest import suggest_parameters
from ace_neuro.stages.cnmfe.summary import (cnmfe_summary_images, find_seeds, pnr_calibration,
                                            seed_count_table, summarize_filtered)
from ace_neuro.stages.cnmfe.update import (ac_block, fit_ring_model, project_data, search_regions,
                                            spatial_products)

H = W = 64
T = 400
CENTRES = [(16, 16), (16, 44), (44, 30), (47, 50)]
SIGMA = 2.5


def toy_movie(seed=0, background=True, noise=1.0):
    """Gaussian neurons with sparse AR(1) activity on a smooth, fluctuating background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    A = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * SIGMA ** 2)) for cy, cx in CENTRES])
    g = np.exp(-1 / 12)
    spikes = (rng.random((len(CENTRES), T)) < 0.02) * rng.uniform(15, 25, (len(CENTRES), T))
    C = lfilter([1.0], [1.0, -g], spikes, axis=1)
    movie = np.einsum("kt,kij->tij", C, A)
    if background:
        bg_img = 60 + 20 * np.exp(-((yy - 20) ** 2 + (xx - 40) ** 2) / (2 * 25 ** 2))
        bg_t = 1 + 0.1 * np.sin(np.arange(T) / 40.0)
        movie = movie + bg_t[:, None, None] * bg_img[None]
    movie = movie + noise * rng.standard_normal(movie.shape)
    return movie.astype(np.float32), A, C, spikes


@pytest.fixture(scope="module")
def toy():
    return toy_movie()


# ----------------------------------------------------------------------------- streaming helpers
def test_validate_frames_rejects_non_movies():
    with pytest.raises(CnmfeInputError, match="frame, height, width"):
        validate_frames(np.zeros((10, 10)))
    with pytest.raises(CnmfeInputError, match="frames"):
        validate_frames(np.zeros((3, 20, 20)))
    with pytest.raises(CnmfeInputError, match="dtype"):
        validate_frames(np.zeros((20, 20, 20), dtype=bool))


def test_frame_source_averages_time_and_space():
    m = np.arange(10 * 4 * 6, dtype=np.float32).reshape(10, 4, 6)
    blocks = list(FrameSource(m, block_frames=4, tsub=2, ssub=2))
    out = np.concatenate([b for _, b in blocks])
    assert out.shape == (5, 2, 3)
    np.testing.assert_allclose(out[0], downsample_space(m[0:2].mean(0, keepdims=True), 2)[0])
    assert [t0 for t0, _ in blocks] == [0, 2, 4]


def test_frame_source_fills_nan_borders():
    m = np.ones((6, 8, 8), np.float32) * np.arange(6, dtype=np.float32)[:, None, None]
    m[:3, :, :2] = np.nan  # a border that is NaN in some frames
    m[:, 0, 7] = np.nan  # a pixel that is never valid
    out = np.concatenate([b for _, b in FrameSource(m, block_frames=6)])
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, :, 0][1:], 4.0)  # mean of the valid frames 3, 4, 5
    assert out[0, 0, 7] == 0.0


def test_downsample_then_upsample_preserves_smooth_images():
    yy, xx = np.mgrid[:40, :50]
    img = (np.sin(yy / 9.0) + np.cos(xx / 11.0)).astype(np.float32)[None]
    back = upsample_space(downsample_space(img, 2), 2, (40, 50))
    assert np.abs(back - img)[:, 2:-2, 2:-2].max() < 0.02


# ----------------------------------------------------------------------------- summary images
def test_summary_images_light_up_neurons(toy):
    movie = toy[0]
    st = summarize_filtered(FrameSource(movie, block_frames=64), (3, 3))
    for cy, cx in CENTRES:
        assert st.corr[cy, cx] > 0.9
        assert st.pnr[cy, cx] > 10
    # filtered noise is spatially smooth, so background pixels correlate moderately
    assert np.median(st.corr) < 0.75 and np.median(st.pnr) < 6


def test_summary_images_do_not_depend_on_block_size(toy):
    movie = toy[0]
    a = summarize_filtered(FrameSource(movie, block_frames=400), (3, 3))
    b = summarize_filtered(FrameSource(movie, block_frames=57), (3, 3))
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-4)
    np.testing.assert_allclose(a.peak, b.peak, atol=1e-4)
    # the robust noise is estimated per block (median), hence close but not identical
    assert np.median(np.abs(a.noise / b.noise - 1)) < 0.05
    # with the noise fixed, the streamed statistics are exact
    c = summarize_filtered(FrameSource(movie, block_frames=400), (3, 3), noise=a.noise)
    d = summarize_filtered(FrameSource(movie, block_frames=57), (3, 3), noise=a.noise)
    np.testing.assert_allclose(c.corr, d.corr, atol=1e-4)
    np.testing.assert_allclose(c.pnr, d.pnr, rtol=1e-4)
    np.testing.assert_allclose(c.norm, d.norm, rtol=1e-4)


def test_seeds_are_the_neuron_centres(toy):
    st = summarize_filtered(FrameSource(toy[0]), (3, 3))
    seeds = find_seeds(st.corr, st.pnr, min_corr=0.8, min_pnr=10, gSiz=(13, 13))
    assert len(seeds) >= len(CENTRES)
    for cy, cx in CENTRES:
        assert np.hypot(seeds[:, 0] - cy, seeds[:, 1] - cx).min() <= 1.5
    # thresholds above every pixel: no seed; border exclusion removes edge seeds
    assert len(find_seeds(st.corr, st.pnr, min_corr=0.8, min_pnr=1e6, gSiz=(13, 13))) == 0
    s_b = find_seeds(st.corr, st.pnr, min_corr=0.8, min_pnr=10, gSiz=(13, 13), border_pix=20)
    assert (s_b[:, :2] >= 20).all() and (s_b[:, :2] < 44).all()


def test_seed_table_is_monotone_in_thresholds(toy):
    st = summarize_filtered(FrameSource(toy[0]), (3, 3))
    tab = seed_count_table(st.corr, st.pnr, gSiz=(13, 13), min_corr_grid=(0.5, 0.8, 0.95),
                           min_pnr_grid=(5, 10, 40))
    assert list(tab.columns) == ["min_corr", "min_pnr", "n_seeds"] and len(tab) == 9
    piv = tab.pivot(index="min_corr", columns="min_pnr", values="n_seeds").to_numpy()
    assert (np.diff(piv, axis=0) <= 0).all() and (np.diff(piv, axis=1) <= 0).all()


def test_pnr_calibration_is_one_without_centering():
    assert pnr_calibration((3, 3), center_psf=False) == 1.0
    assert 1.1 < pnr_calibration((3, 3)) < 1.6


def test_summary_images_and_suggestion_recover_neuron_size(toy):
    summ = cnmfe_summary_images(toy[0], (2, 2), n_frames=300)
    assert summ.frame_ranges and sum(b - a for a, b in summ.frame_ranges) <= 300
    assert len(summ.size_samples) >= 3
    sug = suggest_parameters(summ)
    assert sug.gSig == (round(SIGMA), round(SIGMA)) or sug.gSig == (3, 3)
    assert abs(sug.footprint_sigma_px - SIGMA) < 0.8
    assert sug.gSiz == tuple(4 * g + 1 for g in sug.gSig)
    assert 0.6 <= sug.min_corr <= 0.95 and 4 <= sug.min_pnr <= 30
    with pytest.raises(CnmfeParameterError, match="n_frames"):
        cnmfe_summary_images(toy[0], (3, 3), n_frames=5)


# ----------------------------------------------------------------------------- ring model
def test_ring_offsets_lie_on_the_ring():
    dy, dx = ring_offsets(5)
    d = np.hypot(dy, dx)
    assert (d > 5).all() and (d <= 6).all() and len(dy) > 20
    assert ring_radius((13, 13), 1.4, 2) == 9


def test_sparse_W_equals_fft_application():
    rng = np.random.default_rng(0)
    dims = (30, 26)
    coef = rng.standard_normal((5, *dims)).astype(np.float32)
    model = RingModel(dims=dims, ssub_B=1, radius=4, n_harmonics=2, coef=coef, b0=np.zeros(dims, np.float32))
    x = rng.standard_normal((3, *dims)).astype(np.float32)
    via_fft = RingFilter(dims, 4, 2).combine(x, coef)
    via_W = (model.W @ x.reshape(3, -1).T).T.reshape(3, *dims)
    np.testing.assert_allclose(via_fft, via_W, atol=1e-4)


def test_ring_model_predicts_a_smooth_fluctuating_background():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:H, :W]
    img1 = 50 + 30 * np.exp(-((yy - 20) ** 2 + (xx - 40) ** 2) / (2 * 20.0 ** 2))
    img2 = 20 * np.exp(-((yy - 50) ** 2 + (xx - 10) ** 2) / (2 * 15.0 ** 2))
    t = np.arange(T)
    bg = (1 + 0.2 * np.sin(t / 30.0))[:, None, None] * img1 + (1 + 0.5 * np.cos(t / 17.0))[:, None, None] * img2
    movie = (bg + 0.5 * rng.standard_normal(bg.shape)).astype(np.float32)
    A = sp.csc_matrix((H * W, 0), dtype=np.float32)
    C = np.zeros((0, T), np.float32)
    ring = fit_ring_model(FrameSource(movie), A, C, dims=(H, W), radius=5, ssub_B=2)
    B = ring.background(movie, np.zeros_like(movie))
    fluct = bg - bg.mean(axis=0)
    err = (B - bg)[:, 8:-8, 8:-8]
    assert np.sqrt((err ** 2).mean()) < 0.25 * fluct[:, 8:-8, 8:-8].std()
    np.testing.assert_allclose(ring.b0, movie.mean(axis=0), atol=1e-3)


def _fitted_ring(toy, dims=(H, W), ssub_B=2):
    """The ring model of the toy movie, with compact footprints (one of them at the frame's corner)."""
    movie, A_true, C_true, _ = toy
    yy, xx = np.mgrid[:H, :W]
    corner = np.exp(-((yy - 2) ** 2 + (xx - 61) ** 2) / (2 * SIGMA ** 2))
    A_img = np.concatenate([A_true, corner[None]])
    A_img = np.where(A_img > 0.05, A_img, 0.0)
    A = sp.csc_matrix(A_img.reshape(len(A_img), -1).T.astype(np.float32))
    C = np.concatenate([C_true, C_true[:1, ::-1]]).astype(np.float32)
    ring = fit_ring_model(FrameSource(movie, block_frames=64), A, C, dims=dims, radius=5, ssub_B=ssub_B)
    return movie, A, C, ring


def _background_subtracted(movie, A, C, ring):
    """``Y - B`` frame by frame, as the model defines it (the reference for the passes)."""
    return ring.subtract(movie, ac_block(A.tocsr(), C, (H, W)))


@pytest.mark.parametrize("ssub_B", [1, 2, 3])
def test_projection_pass_equals_projecting_the_background_subtracted_movie(toy, ssub_B):
    movie, A, C, ring = _fitted_ring(toy, ssub_B=ssub_B)
    C = C * 0.9  # the traces of a later update, not those the ring was fitted with
    yhat = _background_subtracted(movie, A, C, ring).reshape(T, -1)
    expected = (A.T @ yhat.T.astype(np.float64))
    got = project_data(FrameSource(movie, block_frames=64), A, C, ring, (H, W))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())


@pytest.mark.parametrize("ssub_B", [1, 2, 3])
def test_spatial_pass_equals_correlating_the_background_subtracted_movie(toy, ssub_B):
    movie, A, C, ring = _fitted_ring(toy, ssub_B=ssub_B)
    C = C * 1.1
    yhat = _background_subtracted(movie, A, C, ring)
    regions = search_regions(A, (H, W), 3)
    got = spatial_products(FrameSource(movie, block_frames=64), A, C, ring, (H, W), regions, batch=3)
    for k, r in enumerate(regions):
        expected = np.tensordot(C[k].astype(np.float64), r.box(yhat), axes=(0, 0))
        np.testing.assert_allclose(got[k], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_box_sums_equal_one_weighted_sum_per_box():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 40, 50)).astype(np.float32)
    w = rng.standard_normal((6, 7)).astype(np.float32)
    w[4] = 0.0  # a box whose weights are all zero
    boxes = [(0, 9, 0, 9), (3, 14, 5, 16), (30, 40, 41, 50), (12, 12, 7, 7), (20, 31, 20, 33), (21, 30, 22, 30)]
    sums = BoxSums(boxes, cell=16)
    got = sums.zeros()
    sums.add(got, w, x)
    sums.add(got, w, x, only=np.array([1, 5]))  # a second block, for some boxes only
    for k, (r0, r1, c0, c1) in enumerate(boxes):
        expected = np.tensordot(w[k].astype(np.float64), x[:, r0:r1, c0:c1], axes=(0, 0))
        if k in (1, 5):
            expected = 2 * expected
        assert got[k].shape == (r1 - r0, c1 - c0)
        np.testing.assert_allclose(got[k], expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- initialisation
def test_extract_seeds_finds_footprints_and_traces(toy):
    movie, A_true, C_true, _ = toy
    src = FrameSource(movie)
    st = summarize_filtered(src, (3, 3))
    seeds = find_seeds(st.corr, st.pnr, min_corr=0.8, min_pnr=10, gSiz=(13, 13))
    init = extract_seeds(src, st, seeds, gSig=(3, 3), gSiz=(13, 13))
    assert init.A.shape == (H * W, len(CENTRES))  # duplicates of a neuron were merged away
    cen = footprint_centroids(init.A, (H, W))
    for k, (cy, cx) in enumerate(CENTRES):
        j = int(np.argmin(np.hypot(cen[:, 0] - cy, cen[:, 1] - cx)))
        assert np.hypot(cen[j, 0] - cy, cen[j, 1] - cx) < 1.0
        assert np.corrcoef(init.C[j], C_true[k])[0, 1] > 0.9
        a = np.asarray(init.A[:, j].todense()).ravel()
        assert np.corrcoef(a, A_true[k].ravel())[0, 1] > 0.8


def test_extract_seeds_with_no_seed_is_empty(toy):
    src = FrameSource(toy[0])
    st = summarize_filtered(src, (3, 3))
    init = extract_seeds(src, st, np.zeros((0, 3)), gSig=(3, 3), gSiz=(13, 13))
    assert init.A.shape == (H * W, 0) and init.C.shape == (0, T)


# ----------------------------------------------------------------------------- merge, duplicates
def _blob(cy, cx, s=2.5):
    yy, xx = np.mgrid[:H, :W]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s)).ravel()


def test_merge_joins_pieces_with_the_same_trace():
    rng = np.random.default_rng(3)
    c = np.maximum(rng.standard_normal(300), 0)
    other = np.maximum(rng.standard_normal(300), 0)
    full = _blob(30, 30)
    left, right = full * (np.arange(H * W) % W < 30), full * (np.arange(H * W) % W >= 30)
    A = sp.csc_matrix(np.stack([left, right, _blob(10, 10)], axis=1))
    C = np.stack([c, c * 0.8, other])
    _, _, n0 = merge_components(A, C, merge_thr=0.7)
    assert n0 == 0  # the halves share no pixel
    A2, C2, n = merge_components(A, C, merge_thr=0.7, dims=(H, W))  # but they touch
    assert n == 1 and A2.shape[1] == 2
    merged = np.asarray(A2[:, 0].todense()).ravel()
    assert np.corrcoef(merged, full)[0, 1] > 0.99
    assert np.corrcoef(C2[0], c)[0, 1] > 0.99
    # uncorrelated overlapping neurons are not merged
    A3 = sp.csc_matrix(np.stack([_blob(30, 30), _blob(30, 35)], axis=1))
    _, _, n3 = merge_components(A3, np.stack([c, other]), merge_thr=0.7)
    assert n3 == 0


def test_duplicates_keep_the_better_component():
    A = sp.csc_matrix(np.stack([_blob(30, 30), _blob(30, 30.5), _blob(10, 10)], axis=1))
    keep = find_duplicates(A, (H, W), quality=np.array([1.0, 5.0, 2.0]), gSig=(3, 3))
    assert keep.tolist() == [False, True, True]


# ----------------------------------------------------------------------------- patches
def test_patch_grid_covers_the_field_with_the_requested_overlap():
    grid = patch_grid((300, 200), 40, 20)
    cover = np.zeros((300, 200), int)
    for r0, r1, c0, c1 in grid:
        assert r1 - r0 <= 81 and c1 - c0 <= 81
        cover[r0:r1, c0:c1] += 1
    assert cover.min() >= 1
    assert patch_grid((50, 50), None, 20) == [(0, 50, 0, 50)]
    with pytest.raises(CnmfeParameterError, match="stride"):
        patch_grid((100, 100), 10, 30)


def test_each_seed_has_one_owner_and_K_caps_per_patch():
    grid = patch_grid((100, 100), 20, 10)
    yx = np.array([[5, 5], [6, 6], [7, 7], [90, 90], [50, 50]])
    owner = assign_to_patches(yx, grid)
    assert owner.shape == (5,) and len(set(owner[:3])) == 1
    keep = cap_per_patch(np.array([3.0, 2.0, 1.0, 1.0, 1.0]), owner, 2)
    assert keep.tolist() == [True, True, False, True, True]
    assert cap_per_patch(np.ones(5), owner, None).all()
