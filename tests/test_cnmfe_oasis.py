"""OASIS deconvolution: known AR traces in, known spikes and calcium out."""
import numpy as np
import pytest
from scipy.signal import lfilter

from ace_neuro.stages.cnmfe.errors import CnmfeParameterError
from ace_neuro.stages.cnmfe.oasis import (ar1_root, deconvolve, estimate_baseline, noise_mad, noise_psd,
                                          oasis_ar1)
from ace_neuro.stages.cnmfe.scoring import spike_f1

FR = 30.0


def _ar1_traces(K, T, *, g, rate=0.3, amp=(0.6, 1.4), sn=0.1, baseline=2.0, seed=0):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((K, T)) < rate / FR) * rng.uniform(*amp, (K, T))
    c = lfilter([1.0], [1.0, -g], spikes, axis=1)
    y = c + baseline + sn * rng.standard_normal((K, T))
    return spikes, c, y


def test_ar1_root_from_decay_time():
    assert ar1_root(0.4, 30.0) == pytest.approx(np.exp(-1 / 12))
    with pytest.raises(CnmfeParameterError, match="decay_time"):
        ar1_root(0.0, 30.0)
    with pytest.raises(CnmfeParameterError, match="frame_rate"):
        ar1_root(0.4, -1)


def test_noise_estimators_recover_white_noise_level():
    rng = np.random.default_rng(1)
    y = 0.7 * rng.standard_normal((20, 4000))
    assert np.median(noise_mad(y)) == pytest.approx(0.7, rel=0.03)
    assert np.median(noise_psd(y)) == pytest.approx(0.7, rel=0.03)


def test_noise_mad_ignores_calcium_transients():
    spikes, c, y = _ar1_traces(10, 3000, g=ar1_root(0.4, FR), amp=(5, 8), sn=0.2, seed=2)
    assert np.median(noise_mad(y)) == pytest.approx(0.2, rel=0.1)
    # the spectral estimate is inflated by the instantaneous rises
    assert np.median(noise_psd(y)) > 1.2 * 0.2


def test_oasis_is_exact_on_noise_free_input():
    g = 0.9
    s = np.zeros(200)
    s[[10, 50, 51, 120]] = [1.0, 0.5, 0.8, 2.0]
    c = lfilter([1.0], [1.0, -g], s)
    c_hat, s_hat = oasis_ar1(c, g)
    np.testing.assert_allclose(c_hat, c, atol=1e-6)  # pools are kept in float32
    np.testing.assert_allclose(s_hat, s, atol=1e-6)
    c_hat, s_hat = oasis_ar1(c, g, s_min=0.1)
    np.testing.assert_allclose(c_hat, c, atol=1e-6)
    assert np.flatnonzero(s_hat).tolist() == [10, 50, 51, 120]


def test_oasis_vectorised_equals_one_trace_at_a_time():
    g = ar1_root(0.4, FR)
    _, _, y = _ar1_traces(7, 800, g=g, baseline=0.0, seed=3)
    c_all, s_all = oasis_ar1(y, g, s_min=0.2, batch_size=3)
    for k in range(7):
        c_k, s_k = oasis_ar1(y[k], g, s_min=0.2)
        np.testing.assert_allclose(c_all[k], c_k)
        np.testing.assert_allclose(s_all[k], s_k)


def test_oasis_result_respects_constraints():
    g = 0.95
    _, _, y = _ar1_traces(5, 1000, g=g, baseline=0.0, seed=4)
    c, s = oasis_ar1(y, g, s_min=0.3)
    assert (c >= 0).all() and (s >= 0).all()
    nz = s[:, 1:][s[:, 1:] > 0]
    assert nz.min() >= 0.3 - 1e-9  # minimal spike size (s_min) holds


def test_deconvolve_recovers_calcium_spikes_and_baseline():
    g = ar1_root(0.4, FR)
    spikes, c, y = _ar1_traces(20, 3000, g=g, sn=0.1, baseline=3.0, seed=5)
    d = deconvolve(y, p=1, decay_time=0.4, frame_rate=FR)
    r = [np.corrcoef(d.c[k], c[k])[0, 1] for k in range(20)]
    assert np.median(r) > 0.99
    np.testing.assert_allclose(d.baseline, 3.0, atol=0.05)
    np.testing.assert_allclose(d.sn, 0.1, rtol=0.15)
    f1 = [spike_f1(spikes[k], d.s[k], tolerance=2) for k in range(20)]
    assert np.median(f1) > 0.9
    assert d.c.dtype == np.float32 and d.g[0, 0] == pytest.approx(g) and d.g[0, 1] == 0


def test_deconvolve_ar2_recovers_rise_and_decay():
    rng = np.random.default_rng(6)
    d_root, r_root = ar1_root(0.4, FR), ar1_root(0.06, FR)
    g1, g2 = d_root + r_root, -d_root * r_root
    spikes = (rng.random((8, 4000)) < 0.3 / FR) * rng.uniform(0.6, 1.4, (8, 4000))
    c = lfilter([1.0], [1.0, -g1, -g2], spikes, axis=1)
    y = c + 0.05 * rng.standard_normal(c.shape) + 1.0
    d = deconvolve(y, p=2, decay_time=0.4, frame_rate=FR)
    assert np.median([np.corrcoef(d.c[k], c[k])[0, 1] for k in range(8)]) > 0.98
    assert np.median(d.g[:, 1]) < 0  # a real rise root was found
    assert np.median([spike_f1(spikes[k], d.s[k]) for k in range(8)]) > 0.8


def test_deconvolve_p0_is_nonnegative_trace():
    y = np.array([[1.0, 3.0, 0.0, 2.0, 1.0, 1.0, 1.0, 1.0]])
    d = deconvolve(y, p=0, decay_time=0.4, frame_rate=FR)
    assert (d.c >= 0).all() and np.array_equal(d.c, d.s)


def test_deconvolve_rejects_bad_order_and_shape():
    with pytest.raises(CnmfeParameterError, match="AR order"):
        deconvolve(np.zeros((2, 50)), p=3, decay_time=0.4, frame_rate=FR)
    with pytest.raises(CnmfeParameterError, match="must lie in"):
        oasis_ar1(np.zeros((2, 10)), 1.5)


def test_baseline_is_the_resting_level():
    g = ar1_root(0.4, FR)
    _, c, y = _ar1_traces(10, 4000, g=g, rate=0.3, sn=0.1, baseline=5.0, seed=7)
    b = estimate_baseline(y, np.full(10, 0.1))
    np.testing.assert_allclose(b, 5.0, atol=0.05)


def test_deconvolution_refines_the_baseline_of_very_active_traces():
    g = ar1_root(0.4, FR)
    _, c, y = _ar1_traces(10, 4000, g=g, rate=1.5, sn=0.1, baseline=5.0, seed=7)
    d = deconvolve(y, p=1, decay_time=0.4, frame_rate=FR)
    mode_err = np.abs(estimate_baseline(y, np.full(10, 0.1)) - 5.0)
    err = np.abs(d.baseline - 5.0)
    assert err.mean() < 0.7 * mode_err.mean()
    assert err.max() < 0.12  # about one noise sd although the neuron is rarely at rest
