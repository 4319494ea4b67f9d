"""The CNMF-E engine end to end on a synthetic recording with known neurons (regression targets)."""
import dataclasses

import numpy as np
import pytest
import zarr

from ace_neuro.params import CnmfeParams, ParameterError, build_pipeline_params
from ace_neuro.stages.cnmfe import CnmfeResult, run_cnmfe
from ace_neuro.stages.cnmfe.errors import CnmfeInputError, CnmfeParameterError
from ace_neuro.stages.cnmfe.scoring import score_against_truth
from ace_neuro.stages.evaluation import accepted_components
from ace_neuro.synthetic.model import SyntheticConfig, simulate_movie

# A small recording with strong background, vessels, bleaching, overlapping neurons and noise.
CONFIG = SyntheticConfig(height=128, width=128, n_frames=600, n_neurons=16, motion="none", seed=4)


@pytest.fixture(scope="module")
def recording():
    return simulate_movie(CONFIG)


@pytest.fixture(scope="module")
def result(recording):
    movie, _ = recording
    return run_cnmfe(movie, CnmfeParams(), frame_rate=CONFIG.frame_rate)


def test_recovers_the_neurons_above_min_pnr(recording, result):
    _, truth = recording
    s = score_against_truth(result, truth)
    assert s.n_detectable >= 10
    assert s.f1 >= 0.95, s.summary()
    assert np.median(s.footprint_corr) >= 0.90
    assert np.median(s.trace_r) >= 0.95
    assert len(s.spike_f1) >= 3 and np.median(s.spike_f1) >= 0.8


def test_result_shapes_and_types(recording, result):
    movie, _ = recording
    T, H, W = movie.shape
    K = result.n_components
    assert result.A.format == "csc" and result.A.shape == (H * W, K)
    assert result.C.shape == result.S.shape == result.YrA.shape == (K, T)
    assert result.C.dtype == np.float32 and (result.C >= 0).all() and (result.S >= 0).all()
    assert result.b0.shape == result.corr.shape == result.pnr.shape == (H, W)
    assert result.sn.shape == (K,) and (result.sn > 0).all()
    assert result.W.shape[0] == result.W.shape[1] == result.ring_coef.shape[1] * result.ring_coef.shape[2]
    np.testing.assert_allclose(result.A.max(axis=0).toarray().ravel(), 1.0, rtol=1e-5)
    assert result.params["engine"] == "native" and result.params["gSig"] == [3, 3]
    assert result.seeds.shape[1] == 2 and len(result.seeds) >= K


def test_model_explains_the_movie(recording, result):
    movie, _ = recording
    Y = movie[:200].astype(np.float32)
    B = result.background(Y, 0)
    AC = (result.A @ result.C[:, :200]).T.reshape(Y.shape)
    resid = Y - B - AC
    # what is left is about the noise level (8-bit movie with ~3-4 counts of noise)
    assert resid.std() < 1.2 * np.median(np.std(np.diff(Y, axis=0), axis=0)) / np.sqrt(2)


def test_round_trip_through_arrays_and_zarr(tmp_path, result):
    d = result.to_arrays()
    assert all(isinstance(v, np.ndarray) for v in d.values())
    group = zarr.open_group(str(tmp_path / "est.zarr"), mode="w")
    for k, v in d.items():
        group.create_array(k, data=v)
    back = CnmfeResult.from_arrays({k: group[k][...] for k in group.array_keys()})
    assert (back.A != result.A).nnz == 0 and (back.W != result.W).nnz == 0
    np.testing.assert_array_equal(back.C, result.C)
    np.testing.assert_array_equal(back.ring_coef, result.ring_coef)
    assert back.dims == result.dims and back.params == dict(result.params)
    with pytest.raises(CnmfeInputError, match="lack .C."):
        CnmfeResult.from_arrays({k: v for k, v in d.items() if k != "C"})


def test_zarr_input_gives_the_numpy_result(tmp_path, recording):
    movie, _ = recording
    small = movie[:300, :64, :64]
    z = zarr.create_array(str(tmp_path / "m.zarr"), shape=small.shape, chunks=(50, 64, 64), dtype=small.dtype)
    z[...] = small
    p = CnmfeParams(min_pnr=8)
    a = run_cnmfe(small, p, frame_rate=30.0, block_frames=64)
    b = run_cnmfe(z, p, frame_rate=30.0, block_frames=64)
    assert a.n_components == b.n_components
    np.testing.assert_allclose(a.C, b.C, rtol=1e-5, atol=1e-5)


def test_K_caps_components_and_progress_is_reported(recording):
    movie, _ = recording
    stages = []
    res = run_cnmfe(movie[:300], CnmfeParams(K=3, rf=None), frame_rate=30.0,
                    progress=lambda stage, f: stages.append((stage, f)))
    assert 1 <= res.n_components <= 3
    assert stages[-1] == ("done", 1.0) and all(0 <= f <= 1 for _, f in stages)


def test_csv_parameters_reach_the_engine(recording):
    movie, _ = recording
    params, _ = build_pipeline_params({"gSig": (4, 4), "min_corr": 0.85, "min_pnr": 9, "ssub": 2, "tsub": 1,
                                       "p": 2, "border_pix": 4, "only_init": False, "rf": None})
    res = run_cnmfe(movie[:300], params.cnmfe, frame_rate=30.0)
    used = res.params
    assert used["gSig"] == [4, 4] and used["gSiz"] == [17, 17] and used["ssub"] == 2 and used["p"] == 2
    assert res.n_components >= 3
    H, W = res.dims
    yy, xx = np.divmod(res.A.indices, W)
    assert yy.min() >= 4 and xx.min() >= 4 and yy.max() < H - 4 and xx.max() < W - 4
    assert np.all(res.g[:, 1] <= 0)


@pytest.mark.parametrize("change", [{"normalize_init": True}, {"center_psf": False, "min_pnr": 6},
                                    {"update_background_components": False}, {"del_duplicates": False},
                                    {"rf": 20, "stride": 10}])
def test_options_still_find_the_bright_neurons(recording, change):
    movie, truth = recording
    res = run_cnmfe(movie[:300], dataclasses.replace(CnmfeParams(), **change), frame_rate=30.0)
    accepted = accepted_components(movie[:300], res)["accepted"].to_numpy()
    s = score_against_truth(res, truth, min_pnr=25.0, accepted=accepted)  # only the brightest are required
    assert s.recall >= 0.8 and s.precision >= 0.8, (change, s.summary())


@pytest.mark.parametrize("change, match", [
    ({"nb": 1}, "nb"), ({"method_init": "greedy_roi"}, "method_init"), ({"p": 3}, "'p'"),
    ({"low_rank_background": True}, "low_rank_background"), ({"method_deconvolution": "cvxpy"}, "oasis"),
    ({"gSig": (0, 3)}, "gSig"), ({"min_corr": 1.5}, "min_corr"), ({"rf": 10, "stride": 40}, "stride"),
    ({"decay_time": 0.0}, "decay_time"), ({"nb_patch": 1}, "nb_patch"),
])
def test_unsupported_or_invalid_parameters_are_refused_when_built(change, match):
    with pytest.raises(ParameterError, match=match) as info:
        dataclasses.replace(CnmfeParams(), **change)
    assert info.value.parameter == match.strip("'") or info.value.parameter == "method_deconvolution"


def test_parameters_that_do_not_fit_the_movie_are_rejected(recording):
    movie, _ = recording
    with pytest.raises(CnmfeParameterError, match="border_pix") as info:
        run_cnmfe(movie[:50], CnmfeParams(border_pix=70), frame_rate=30.0)
    assert isinstance(info.value, ParameterError) and info.value.parameter == "border_pix"


def test_bad_inputs_are_rejected():
    with pytest.raises(CnmfeInputError):
        run_cnmfe(np.zeros((100, 100)), CnmfeParams(), frame_rate=30.0)
    with pytest.raises(CnmfeParameterError, match="frame_rate"):
        run_cnmfe(np.zeros((50, 32, 32), np.uint8), CnmfeParams(), frame_rate=0)


def test_blank_movie_gives_no_components():
    rng = np.random.default_rng(0)
    movie = (100 + 2 * rng.standard_normal((200, 48, 48))).astype(np.float32)
    res = run_cnmfe(movie, CnmfeParams(), frame_rate=30.0)
    assert res.n_components == 0 and res.C.shape == (0, 200)
    assert res.b0.shape == (48, 48)
    back = CnmfeResult.from_arrays(res.to_arrays())
    assert back.A.shape == (48 * 48, 0)
    table = accepted_components(movie, back)
    assert len(table) == 0 and list(table.columns)[-1] == "reason"
