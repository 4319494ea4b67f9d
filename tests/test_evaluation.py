"""Component evaluation: SNR and r-values with known answers, acceptance, manual curation files."""
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ace_neuro.params import CnmfeParams, EvaluationParams, ParameterError
from ace_neuro.stages.cnmfe import run_cnmfe
from ace_neuro.stages.cnmfe.result import CnmfeResult
from ace_neuro.stages.cnmfe.update import ac_block
from ace_neuro.stages.evaluation import (COLUMNS, Curation, EvaluationError, accepted_components, active_frames,
                                         apply_curation, component_rvalues, component_snr, load_curation,
                                         save_curation, solo_active_frames)
from ace_neuro.synthetic.model import SyntheticConfig, simulate_movie


def _result_with_traces(raw: np.ndarray, sn: float = 1.0, dims=(8, 8)) -> CnmfeResult:
    """A minimal result whose raw traces (C + YrA) are ``raw``."""
    K, T = raw.shape
    P = dims[0] * dims[1]
    A = sp.csc_matrix(np.eye(P, K, dtype=np.float32))
    z = np.zeros((K, T), np.float32)
    return CnmfeResult(A=A, C=np.maximum(raw, 0).astype(np.float32), S=z, YrA=(raw - np.maximum(raw, 0)).astype(np.float32),
                       sn=np.full(K, sn), baseline=np.zeros(K), g=np.zeros((K, 2)), b0=np.zeros(dims, np.float32),
                       W=sp.csr_matrix((P, P), dtype=np.float32), ring_coef=np.zeros((5, *dims), np.float32),
                       ring_radius=2, ssub_B=1, n_harmonics=2, corr=np.zeros(dims, np.float32),
                       pnr=np.zeros(dims, np.float32), seeds=np.zeros((0, 2)), dims=dims, frame_rate=30.0,
                       params={"decay_time": 0.4})


def test_snr_separates_noise_from_transients():
    rng = np.random.default_rng(0)
    T = 3000
    noise = rng.standard_normal((20, T))
    kernel = np.exp(-np.arange(40) / 12.0)
    spikes = np.zeros((20, T))
    spikes[:, 500] = 5.0  # one transient of 5 noise units per trace
    transient = np.array([np.convolve(s, kernel)[:T] for s in spikes]) + rng.standard_normal((20, T))
    snr_noise = component_snr(_result_with_traces(noise), decay_time=0.4)
    snr_cell = component_snr(_result_with_traces(transient), decay_time=0.4)
    assert np.all(snr_noise < 2.0)
    assert np.all(snr_cell > 2.8) and np.median(snr_cell) > 3.3
    with pytest.raises(EvaluationError):
        component_snr(_result_with_traces(noise), decay_time=0)


def test_active_frames_surround_the_largest_peaks():
    c = np.zeros((2, 200))
    c[0, [20, 100, 150]] = [5, 10, 2]
    fr = active_frames(c, n_peaks=2)
    assert set(fr[0]) == set(range(97, 111)) | set(range(17, 31))  # the 2 biggest peaks, -3..+10
    assert len(fr[1]) == 0


@pytest.fixture(scope="module")
def extraction():
    cfg = SyntheticConfig(height=96, width=96, n_frames=500, n_neurons=10, motion="none", seed=7)
    movie, truth = simulate_movie(cfg)
    res = run_cnmfe(movie, CnmfeParams(min_pnr=6, min_corr=0.7), frame_rate=cfg.frame_rate)
    return movie, truth, res


def test_table_has_one_row_per_component_with_reasons(extraction):
    movie, _, res = extraction
    tab = accepted_components(movie, res, EvaluationParams())
    assert list(tab.columns) == list(COLUMNS) and len(tab) == res.n_components >= 5
    assert tab["component_id"].tolist() == list(range(res.n_components))
    assert tab["accepted"].dtype == bool
    real = tab[tab.accepted]
    assert len(real) >= 5 and (real.r_value > 0.85).all() and (real.snr >= 2.5).all()
    assert (real.reason == "passed").all()
    strict = accepted_components(movie, res, EvaluationParams(min_SNR=1e6, rval_thr=0.85))
    assert not strict.accepted.any()
    assert strict.reason.str.contains("< min_SNR 1e+06", regex=False).all()


def test_rvalues_reject_a_footprint_that_does_not_fit_the_data(extraction):
    movie, _, res = extraction
    # move component 0's footprint somewhere else: its r-value must collapse
    A = res.A.tolil()
    H, W = res.dims
    img = np.asarray(res.A[:, 0].todense()).reshape(H, W)
    A[:, 0] = np.roll(np.roll(img, 30, axis=0), 30, axis=1).reshape(-1, 1)
    bad = CnmfeResult(**{**res.__dict__, "A": A.tocsc()})
    tab = accepted_components(movie, bad, EvaluationParams())
    good = accepted_components(movie, res, EvaluationParams())
    assert tab.r_value[0] < good.r_value[0] - 0.3
    assert not tab.accepted[0] and "r_value" in tab.reason[0]


def test_rvalues_correlate_each_footprint_with_its_active_frames_of_the_background_subtracted_movie(extraction):
    movie, _, res = extraction
    yhat = res.ring_model().subtract(movie, ac_block(res.A.tocsr(), res.C, res.dims)).reshape(len(movie), -1)
    A = res.A.tocsc()
    act = solo_active_frames(A, active_frames(res.C), len(movie))
    expected = []
    for k in range(res.n_components):
        a = np.asarray(A[:, k].todense()).ravel()
        on = a >= 0.1 * a.max()
        expected.append(np.corrcoef(a[on], yhat[act[k]][:, on].mean(axis=0))[0, 1])
    np.testing.assert_allclose(component_rvalues(movie, res, block_frames=64), expected, atol=1e-4)


def test_mismatched_movie_is_an_error(extraction):
    movie, _, res = extraction
    with pytest.raises(EvaluationError, match="movie CNMF-E was run on"):
        accepted_components(movie[:100], res)


def test_curation_round_trip_and_application(tmp_path, extraction):
    movie, _, res = extraction
    tab = accepted_components(movie, res)
    acc_id = int(tab.component_id[tab.accepted].iloc[0])
    path = tmp_path / "curation" / "line96.json"
    assert load_curation(path) == Curation()  # no file yet: nothing curated
    save_curation(path, Curation(rejected=(acc_id,), note="looks like a vessel"), table=tab)
    raw = json.loads(path.read_text())
    assert raw["rejected"] == [acc_id] and raw["restored"] == [] and raw["note"] == "looks like a vessel"
    assert raw["updated"].endswith("+00:00") and str(acc_id) in raw["centroids"]
    assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no temporary file
    cur = load_curation(path)
    out = accepted_components(movie, res, curation=cur)
    row = out[out.component_id == acc_id].iloc[0]
    assert not row.accepted and row.reason == "manual: rejected"
    # everything else is untouched
    others = out.component_id != acc_id
    pd.testing.assert_series_equal(out.accepted[others], tab.accepted[others])


def test_curation_restores_and_follows_renumbered_components(extraction):
    movie, _, res = extraction
    tab = accepted_components(movie, res, EvaluationParams(min_SNR=1e6))
    cur = Curation(restored=(2,), centroids={2: (float(tab.centroid_y[2]), float(tab.centroid_x[2]))})
    out = apply_curation(tab, cur)
    assert out.accepted[2] and out.reason[2].startswith("manual: restored")
    # a re-run that lists the components in another order: the decision follows the place
    shuffled = tab.iloc[::-1].reset_index(drop=True).copy()
    shuffled["component_id"] = np.arange(len(shuffled))
    new_id = int(shuffled.index[(shuffled.centroid_y == tab.centroid_y[2])][0])
    out2 = apply_curation(shuffled, cur)
    assert out2.accepted[new_id] and out2.accepted.sum() == 1


def test_bad_curation_files_are_reported(tmp_path):
    p = tmp_path / "c.json"
    p.write_text("{not json")
    with pytest.raises(EvaluationError, match="not readable JSON"):
        load_curation(p)
    p.write_text(json.dumps({"rejected": ["3"]}))
    with pytest.raises(EvaluationError, match="'rejected' must be a list"):
        load_curation(p)
    with pytest.raises(EvaluationError, match="both rejected and restored"):
        Curation(rejected=(1,), restored=(1,))


def test_use_cnn_is_refused(extraction):
    movie, _, res = extraction
    with pytest.raises(ParameterError, match="use_cnn.*no CNN classifier"):
        accepted_components(movie, res, EvaluationParams(use_cnn=True))
