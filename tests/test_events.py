"""Calcium events: the original's derivative method, the noise method, spikes, scoring."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import find_peaks, lfilter

from ace_neuro.params import EventParams, ParameterError
from ace_neuro.stages.events import (
    EVENT_COLUMNS, EventError, EventMatch, attach_phase, detect_events, match_event_times, onset_score,
    robust_noise,
)

FPS = 30.0


def synthetic_traces(k, seconds, *, rate_hz=0.3, snr=5.0, decay_s=0.4, fps=FPS, seed=0):
    """Poisson spikes of size 1 through an AR(1) decay plus white noise of sd 1 / snr."""
    rng = np.random.default_rng(seed)
    t = int(seconds * fps)
    spikes = (rng.random((k, t)) < rate_hz / fps).astype(np.float64)
    g = np.exp(-1.0 / (decay_s * fps))
    calcium = lfilter([1.0], [1.0, -g], spikes, axis=1)
    noisy = calcium + rng.normal(0.0, 1.0 / snr, size=(k, t))
    return noisy, calcium, spikes, np.arange(t) / fps


def _score(events, spikes, tolerance=2):
    total = EventMatch(0, 0, 0)
    for k in range(spikes.shape[0]):
        total = total + match_event_times(np.flatnonzero(spikes[k]), events.frame[events.component_id == k], tolerance)
    return total


# --------------------------------------------------------------------------- the original's method
HAND_TRACE = np.array([0, 0, 0, 7, 6, 5, 4, 3, 9, 16, 12, 8, 8, 8, 2, 1, 1, 13, 10, 7], dtype=float)


@pytest.mark.parametrize("which, order, offset", [("zeroth", 0, 0), ("first", 1, 1), ("second", 2, 1)])
def test_derivative_method_reproduces_the_original_plus_frame_offset(which, order, offset):
    height = 5.0
    data = np.diff(HAND_TRACE, n=order) if order else HAND_TRACE
    original, _ = find_peaks(data, height=height)  # what the original returned
    assert original.size >= 2
    times = np.arange(HAND_TRACE.size) / FPS
    ev = detect_events(HAND_TRACE, times, EventParams(method="derivative", derivative_for_estimates=which,
                                                      event_height=height))
    np.testing.assert_array_equal(ev.frame.to_numpy(), original + offset)
    np.testing.assert_allclose(ev.time_s.to_numpy(), times[original + offset])
    np.testing.assert_allclose(ev.amplitude.to_numpy(), HAND_TRACE[original + offset])
    assert (ev.threshold == height).all() and (ev.threshold_abs == height).all()
    assert (ev.method == "derivative").all()


def test_first_derivative_event_is_the_frame_that_rose():
    # the jumps 0 -> 7, 9 -> 16 and 1 -> 13 happen into frames 3, 9 and 17: first-derivative events sit there
    ev = detect_events(HAND_TRACE, np.arange(20) / FPS, EventParams(method="derivative", event_height=5.0))
    assert list(ev.frame) == [3, 9, 17]
    assert all(HAND_TRACE[f] - HAND_TRACE[f - 1] >= 5 for f in ev.frame)


def test_times_come_from_the_frame_times_not_frame_over_fps():
    times = np.cumsum(np.r_[0.0, np.full(19, 1 / 29.97)])
    times[10:] += 0.5  # a gap from dropped frames
    ev = detect_events(HAND_TRACE, times, EventParams(method="derivative", event_height=5.0))
    np.testing.assert_allclose(ev.time_s.to_numpy(), times[[3, 9, 17]])


# --------------------------------------------------------------------------- noise method
def test_noise_method_f1_on_synthetic_traces_at_snr_5():
    noisy, _, spikes, times = synthetic_traces(12, 300, snr=5.0)
    ev = detect_events(noisy, times, EventParams(method="noise", noise_threshold=4.0))
    score = _score(ev, spikes, tolerance=2)
    assert score.f1 >= 0.9, score
    assert score.precision >= 0.95, score
    assert (ev.method == "noise").all() and (ev.threshold == 4.0).all()
    # noise estimated from the trace: 0.2 (= 1 / snr) within 10 %
    np.testing.assert_allclose(ev.groupby("component_id").noise_sigma.first(), 0.2, rtol=0.1)


def test_noise_method_threshold_scales_with_noise():
    noisy, _, _, times = synthetic_traces(3, 120, snr=5.0, seed=4)
    ev = detect_events(noisy, times, EventParams(method="noise", noise_threshold=4.0))
    m = 5  # 0.15 s at 30 fps
    expected = 4.0 * ev.noise_sigma * np.sqrt(2 / m)
    np.testing.assert_allclose(ev.threshold_abs, expected)
    # the same traces scaled by 1000 give the same events (the threshold is in noise units)
    ev_big = detect_events(noisy * 1000, times, EventParams(method="noise", noise_threshold=4.0))
    np.testing.assert_array_equal(ev.frame, ev_big.frame)


def test_noise_method_on_pure_noise_finds_almost_nothing():
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, size=(10, 9000))
    ev = detect_events(x, np.arange(9000) / FPS, EventParams(method="noise", noise_threshold=4.0))
    # 90,000 frames of white noise: a 4-sd threshold expects a handful of crossings (about 0.1 per
    # minute per trace); a miscalibrated noise scale (e.g. a missing sqrt(2)) would give hundreds
    assert len(ev) <= 10


def test_given_noise_is_used_for_denoised_traces():
    _, calcium, spikes, times = synthetic_traces(4, 120, snr=5.0, seed=2)
    ev = detect_events(calcium, times, EventParams(method="noise"), noise=0.2)
    assert np.allclose(ev.noise_sigma, 0.2)
    assert _score(ev, spikes).f1 >= 0.9


def test_robust_noise_and_onset_score():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2.0, size=(3, 20000)) + np.linspace(0, 50, 20000)  # noise on a slow ramp
    np.testing.assert_allclose(robust_noise(x), 2.0, rtol=0.03)
    step = np.r_[np.zeros(10), np.ones(10)][None, :]
    score = onset_score(step, 3)
    assert np.nanargmax(score[0]) == 10 and score[0, 10] == pytest.approx(1.0)
    assert np.isnan(score[0, :3]).all() and np.isnan(score[0, -2:]).all()


# --------------------------------------------------------------------------- spikes method
def test_spikes_method_uses_runs_of_deconvolved_spikes_above_a_noise_floor():
    s = np.zeros((2, 40))
    s[0, 5] = 1.0          # a clean spike
    s[0, 20:22] = [0.4, 0.5]  # one jump spread over two frames: one event, at the larger spike
    s[0, 30] = 0.1         # below the floor (4 * 0.05 = 0.2)
    s[1, 12] = 0.3
    trace = lfilter([1.0], [1.0, -0.9], s, axis=1)
    ev = detect_events(trace, np.arange(40) / FPS, EventParams(method="spikes", noise_threshold=4.0),
                       spikes=s, noise=0.05, component_ids=[11, 42])
    assert list(zip(ev.component_id, ev.frame)) == [(11, 5), (11, 21), (42, 12)]
    np.testing.assert_allclose(ev.prominence, [1.0, 0.9, 0.3])
    np.testing.assert_allclose(ev.threshold_abs, 0.2)


def test_spikes_method_on_synthetic_spikes():
    _, calcium, spikes, times = synthetic_traces(5, 120, seed=3)
    ev = detect_events(calcium, times, EventParams(method="spikes"), spikes=spikes, noise=0.2)
    assert _score(ev, spikes, tolerance=0).f1 >= 0.95


# --------------------------------------------------------------------------- table, phase, scoring
def test_empty_and_disabled_results_have_the_columns():
    x = np.zeros((2, 50))
    for params in (EventParams(enabled=False), EventParams(method="noise"), EventParams(method="derivative")):
        ev = detect_events(x, np.arange(50) / FPS, params)
        assert list(ev.columns) == list(EVENT_COLUMNS) and len(ev) == 0
        assert ev.frame.dtype == np.int64


def test_component_ids_and_sorting():
    noisy, _, _, times = synthetic_traces(3, 60, seed=5)
    ev = detect_events(noisy, times, EventParams(), component_ids=[7, 3, 9])
    assert set(ev.component_id) == {7, 3, 9}
    # rows follow the traces' order (7, 3, 9), then time
    order = {7: 0, 3: 1, 9: 2}
    keys = list(zip(ev.component_id.map(order), ev.frame))
    assert keys == sorted(keys)


def test_attach_phase():
    ev = pd.DataFrame({"component_id": [0, 0, 5], "frame": [1, 3, 2]})
    phase = np.linspace(-3, 3, 5)
    out = attach_phase(ev, phase)
    np.testing.assert_allclose(out.phase_rad, phase[[1, 3, 2]])
    assert "phase_rad" not in ev  # the input is not modified
    per_comp = np.vstack([phase, -phase])
    out2 = attach_phase(ev, per_comp, component_ids=[0, 5])
    np.testing.assert_allclose(out2.phase_rad, [phase[1], phase[3], -phase[2]])
    with pytest.raises(EventError, match="no phase row"):
        attach_phase(ev, per_comp, component_ids=[0, 1])
    with pytest.raises(EventError, match="frame 3"):
        attach_phase(ev, phase[:3])


def test_match_event_times():
    m = match_event_times([10, 20, 30, 40], [11, 19, 22, 45, 100], 2)
    assert (m.n_true, m.n_found, m.n_matched) == (4, 5, 2)
    assert m.precision == pytest.approx(0.4) and m.recall == pytest.approx(0.5)
    assert m.f1 == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    # one detection cannot match two true events
    assert match_event_times([10, 11], [10], 2).n_matched == 1
    assert match_event_times([], [], 0).f1 == 1.0
    assert match_event_times([1], [], 0).f1 == 0.0
    with pytest.raises(EventError):
        match_event_times([1], [1], -1)


def test_input_errors():
    x = np.zeros((2, 30))
    t = np.arange(30) / FPS
    with pytest.raises(EventError, match="times has shape"):
        detect_events(x, t[:-1], EventParams())
    with pytest.raises(EventError, match="non-decreasing"):
        detect_events(x, t[::-1], EventParams())
    with pytest.raises(EventError, match="component_ids has 3"):
        detect_events(x, t, EventParams(), component_ids=[1, 2, 3])
    with pytest.raises(ParameterError, match="event_method' = 'magic'"):  # refused when built
        detect_events(x, t, EventParams(method="magic"))
    with pytest.raises(ParameterError, match="derivative_for_estimates"):
        detect_events(x, t, EventParams(method="derivative", derivative_for_estimates="third"))
    with pytest.raises(EventError, match="needs the deconvolved spike matrix"):
        detect_events(x, t, EventParams(method="spikes"))
    with pytest.raises(EventError, match="spikes has shape"):
        detect_events(x, t, EventParams(method="spikes"), spikes=np.zeros((3, 30)))
    with pytest.raises(EventError, match="noise"):
        detect_events(x, t, EventParams(), noise=[1.0, -1.0])
    bad = x.copy()
    bad[1, 4] = np.nan
    with pytest.raises(EventError, match=r"rows \[1\]"):
        detect_events(bad, t, EventParams())
    with pytest.raises(EventError, match="shape"):
        detect_events(np.zeros((2, 3, 4)), t, EventParams())


def test_event_figures_render():
    from ace_neuro.plots.common import figure_png
    from ace_neuro.plots.signals import plot_event_phase_histogram, plot_event_raster

    noisy, _, _, times = synthetic_traces(4, 60, seed=6)
    ev = detect_events(noisy, times, EventParams())
    raster = plot_event_raster(noisy, ev, times=times, max_components=3)
    assert "first 3 of 4" in raster.axes[0].get_title()
    assert figure_png(raster).startswith(b"\x89PNG")
    # events locked to phase 1 rad: the histogram's tallest bar holds them all
    locked = ev.assign(phase_rad=1.0)
    polar = plot_event_phase_histogram(locked, n_bins=12)
    heights = [p.get_height() for p in polar.axes[0].patches]
    assert max(heights) == len(ev) and "R = 1.00" in polar.axes[0].get_title()
    with pytest.raises(ValueError, match="attach_phase"):
        plot_event_phase_histogram(ev)
