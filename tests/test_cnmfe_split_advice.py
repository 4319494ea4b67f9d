"""Splitting components that hold two neurons, and advice on CSV values far from the data."""
import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from ace_neuro.params import CnmfeParams
from ace_neuro.stages.cnmfe import Suggestion, advise_parameters, run_cnmfe
from ace_neuro.stages.cnmfe.split import ComponentCovariances, CovarianceTap, apply_splits
from ace_neuro.synthetic.model import SyntheticConfig, simulate_movie

H = W = 40
T = 1500


def _blob(cy, cx, sigma=4.0):
    yy, xx = np.mgrid[:H, :W]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))


def _spikes(rng, rate=0.02):
    s = (rng.random(T) < rate) * rng.uniform(5, 10, T)
    c = np.zeros(T)
    for t in range(T):
        c[t] = (c[t - 1] * 0.9 if t else 0.0) + s[t]
    return c


def _residual_blocks(footprints, traces, component, noise, rng, block=100):
    """Residual ``Y - A C`` of a movie of ``footprints x traces`` modelled by one ``component``."""
    A = sp.csc_matrix(component.reshape(-1, 1))
    movie = np.tensordot(traces.T, footprints, axes=(1, 0)) + rng.normal(0, noise, (T, H, W))
    c_fit = np.linalg.lstsq(component.reshape(-1, 1), movie.reshape(T, -1).T, rcond=None)[0]
    resid = movie - np.tensordot(c_fit.T, component[None], axes=(1, 0))
    blocks = [(t0, resid[t0:t0 + block].astype(np.float32)) for t0 in range(0, T, block)]
    return A, c_fit.astype(np.float32), blocks


def _splits_of(footprints, traces, component, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    A, C, blocks = _residual_blocks(footprints, traces, component, noise, rng)
    cov = ComponentCovariances(A, C, (H, W), T)
    tap = CovarianceTap(blocks, cov)
    for _ in tap:  # the first pass feeds the covariances, a second one does not
        pass
    n_after_one = cov.n
    for _ in tap:
        pass
    assert cov.n == n_after_one == T
    return A, C, cov.splits()


def test_two_independent_neurons_in_one_component_are_split():
    rng = np.random.default_rng(1)
    a1, a2 = _blob(18, 17), _blob(22, 24)
    traces = np.stack([_spikes(rng), _spikes(rng)])
    A, C, splits = _splits_of(np.stack([a1, a2]), traces, a1 + a2)
    assert len(splits) == 1
    s = splits[0]
    # one footprint peaks near each neuron, and the new seed is the other neuron's centre
    peaks = sorted(divmod(int(s.pixels[np.argmax(f)]), W) for f in (s.kept, s.other))
    assert np.hypot(peaks[0][0] - 18, peaks[0][1] - 17) <= 2.5
    assert np.hypot(peaks[1][0] - 22, peaks[1][1] - 24) <= 2.5
    assert np.hypot(s.seed[0] - 20, s.seed[1] - 20.5) > 2
    # sharing the component between the two neurons keeps A C as it was
    A2, C2 = apply_splits(A, C, splits, (H, W), (H, W), 1)
    assert A2.shape[1] == 2 and C2.shape[0] == 2
    np.testing.assert_allclose((A2 @ C2)[:, :50], (A @ C)[:, :50], rtol=1e-4, atol=1e-4)


def test_one_neuron_is_not_split():
    rng = np.random.default_rng(2)
    a = _blob(20, 20)
    _, _, splits = _splits_of(a[None], _spikes(rng)[None], a)
    assert splits == []


def test_two_neurons_firing_together_are_not_split():
    """Perfectly correlated neurons are one source over time: nothing to separate them by."""
    rng = np.random.default_rng(3)
    c = _spikes(rng)
    a1, a2 = _blob(18, 17), _blob(22, 24)
    _, _, splits = _splits_of(np.stack([a1, a2]), np.stack([c, c]), a1 + a2)
    assert splits == []


def _suggestion(gSig=(5, 5), min_corr=0.8, min_pnr=6.0, n_measured=20):
    return Suggestion(gSig=gSig, gSiz=(4 * gSig[0] + 1,) * 2, min_corr=min_corr, min_pnr=min_pnr,
                      footprint_sigma_px=float(gSig[0]), n_measured=n_measured, notes=())


def test_advice_names_both_values_and_the_switch():
    advice = advise_parameters(gSig=(3, 3), min_corr=0.8, min_pnr=10.0, suggestion=_suggestion())
    names = [a.name for a in advice]
    assert names == ["gSig", "min_pnr"]
    gsig = advice[0]
    assert gsig.csv_value == (3, 3) and gsig.suggested == (5, 5)
    assert gsig.relative_difference == pytest.approx(0.4)
    for text in ("gSig = (3, 3)", "(5, 5)", "40% below", "use_suggested_params = TRUE", "analysis_parameters.csv"):
        assert text in gsig.message
    assert "min_pnr = 10" in advice[1].message and "67% above" in advice[1].message


def test_advice_silent_within_thirty_percent_and_without_measured_footprints():
    assert advise_parameters(gSig=(4, 4), min_corr=0.7, min_pnr=7.5, suggestion=_suggestion()) == ()
    advice = advise_parameters(gSig=(2, 2), min_corr=0.8, min_pnr=6.0, suggestion=_suggestion(n_measured=0))
    assert advice == ()


def test_engine_reports_a_gsig_far_from_the_data_and_keeps_the_csv_value():
    cfg = SyntheticConfig(height=96, width=96, n_frames=400, n_neurons=10, motion="none", seed=7,
                          soma_radius_px=(5.0, 6.0))
    movie, _ = simulate_movie(cfg)
    params = dataclasses.replace(CnmfeParams(), gSig=(2, 2), gSiz=(9, 9))
    res = run_cnmfe(movie, params, frame_rate=cfg.frame_rate)
    advice = res.params["parameter_advice"]
    assert any(m.startswith("gSig = (2, 2)") and "use_suggested_params = TRUE" in m for m in advice), advice
    assert res.params["gSig"] == [2, 2]
