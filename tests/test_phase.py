"""Band-pass filter and Hilbert phase."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy.signal import filtfilt

from ace_neuro.params import FilterParams, ParameterError
from ace_neuro.stages.phase import (
    PhaseError, apply_filter, compute_phase, design_filter, mean_fluorescence, phase_table, wrap_phase,
)

FS = 30.0


def _angle_error(a, b):
    return np.abs(np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b)))))


def _sinusoid(f_hz=0.5, seconds=120, fs=FS, phase0=0.3, amp=2.0):
    t = np.arange(int(seconds * fs)) / fs
    true_phase = 2 * np.pi * f_hz * t + phase0
    return t, amp * np.cos(true_phase), true_phase


@pytest.mark.parametrize("ftype", ["butter", "fir"])
def test_sinusoid_in_the_pass_band_gives_its_analytic_phase(ftype):
    t, x, true_phase = _sinusoid()
    res = compute_phase(x + 5.0, FS, FilterParams(ftype=ftype))
    inner = (t > 15) & (t < t[-1] - 15)
    assert _angle_error(res.phase, true_phase)[inner].max() < 0.05
    assert res.filter_applied and res.design.ftype == ftype
    assert res.phase.max() <= math.pi and res.phase.min() > -math.pi


def test_drift_and_fast_noise_are_filtered_before_the_phase():
    t, x, true_phase = _sinusoid(f_hz=0.5)
    rng = np.random.default_rng(0)
    drift = 20 * t / t[-1] + 3 * np.sin(2 * np.pi * 0.01 * t)  # photobleaching-like, below 0.1 Hz
    fast = 1.0 * np.sin(2 * np.pi * 6.0 * t) + rng.normal(0, 0.3, t.size)  # above 1.5 Hz (+ white noise)
    contaminated = x + drift + fast
    inner = (t > 15) & (t < t[-1] - 15)
    res = compute_phase(contaminated, FS, FilterParams(n=2, cut=(0.1, 1.5)))
    assert _angle_error(res.phase, true_phase)[inner].max() < 0.25
    assert np.median(_angle_error(res.phase, true_phase)[inner]) < 0.05
    # the original's order (phase of the raw trace) is badly wrong on the same data
    raw = compute_phase(contaminated, FS, FilterParams(filter_enabled=False))
    assert np.median(_angle_error(raw.phase, true_phase)[inner]) > 0.3
    # the filtered trace is the sinusoid (Butterworth band-pass passes 0.5 Hz almost unchanged)
    np.testing.assert_allclose(res.filtered[inner], x[inner], atol=0.35)


def test_vectorised_over_components_and_dtype_follows_input():
    _, x, _ = _sinusoid(seconds=60)
    rows = np.vstack([x, 2 * x, -x]).astype(np.float32)
    res = compute_phase(rows, FS, FilterParams())
    assert res.phase.shape == rows.shape and res.phase.dtype == np.float32
    single = compute_phase(x, FS, FilterParams())
    np.testing.assert_allclose(res.phase[0], single.phase, atol=1e-5)
    np.testing.assert_allclose(res.amplitude[1], 2 * single.amplitude, rtol=1e-4, atol=1e-5)
    assert np.median(_angle_error(res.phase[2], single.phase + np.pi)) < 1e-3


def test_fir_is_filtfilt():
    design = design_filter(FS, FilterParams(ftype="fir", cut=(0.1, 1.5)))
    assert design.taps.size == 991 and design.taps.size % 2 == 1
    x = np.random.default_rng(1).normal(size=(2, 4000))
    np.testing.assert_allclose(apply_filter(x, design), filtfilt(design.taps, 1.0, x, axis=-1), atol=1e-12)


@pytest.mark.parametrize("btype, edges", [("lowpass", (1.5,)), ("highpass", (0.1,)), ("bandstop", (0.1, 1.5))])
def test_band_types_use_the_documented_edges(btype, edges):
    design = design_filter(FS, FilterParams(btype=btype, cut=(0.1, 1.5)))
    assert design.edges_hz == edges


def test_lowpass_keeps_slow_and_removes_fast():
    t = np.arange(3000) / FS
    slow, fast = np.sin(2 * np.pi * 0.2 * t), np.sin(2 * np.pi * 8 * t)
    res = compute_phase(slow + fast, FS, FilterParams(btype="lowpass", cut=(1.0, 1.0), n=4))
    inner = slice(300, -300)
    np.testing.assert_allclose(res.filtered[inner], slow[inner] - slow.mean(), atol=0.02)


def test_cut_above_nyquist_is_an_error_naming_cut_fs_and_nyquist():
    with pytest.raises(PhaseError) as err:
        design_filter(29.97, FilterParams(cut=(0.1, 20.0)))
    msg = str(err.value)
    assert "cut = (0.1, 20.0)" in msg and "29.97" in msg and "14.985" in msg


@pytest.mark.parametrize("values, needle", [
    ({"ftype": "bessel"}, "ftype"), ({"btype": "notch"}, "btype"), ({"cut": (0.0, 1.5)}, "cut"),
    ({"cut": (2.0, 1.5)}, "cut"), ({"n": 0}, "'n'"),
])
def test_invalid_filter_parameters_are_refused_when_built(values, needle):
    with pytest.raises(ParameterError, match=needle) as info:
        FilterParams(**values)
    assert info.value.parameter == needle.strip("'")


def test_design_errors():
    with pytest.raises(PhaseError, match="fs"):
        design_filter(0.0, FilterParams())
    with pytest.raises(ParameterError, match="Nyquist") as info:  # known from the frame rate: a parameter error
        design_filter(10.0, FilterParams(cut=(0.1, 6.0)))
    assert info.value.parameter == "cut"


def test_short_trace_error():
    with pytest.raises(PhaseError, match="needs at least.*or use ftype 'butter'"):
        compute_phase(np.sin(np.arange(500) / 5.0), FS, FilterParams(ftype="fir"))
    with pytest.raises(PhaseError, match="needs at least") as info:  # already butter: no advice to use it
        compute_phase(np.sin(np.arange(5) / 5.0), FS, FilterParams(ftype="butter"))
    assert "use ftype" not in str(info.value)
    with pytest.raises(PhaseError, match="NaN"):
        compute_phase(np.r_[np.nan, np.zeros(100)], FS, FilterParams())


def test_filter_off_warns_and_uses_the_mean_removed_trace(caplog):
    _, x, true_phase = _sinusoid(seconds=60)
    with caplog.at_level(logging.WARNING):
        res = compute_phase(x + 10, FS, FilterParams(filter_enabled=False))
    assert "unfiltered" in caplog.text
    assert not res.filter_applied
    np.testing.assert_allclose(res.filtered, x - x.mean(), atol=1e-12)
    assert np.median(_angle_error(res.phase, true_phase)) < 0.01


def test_wrap_phase_half_open_interval():
    w = wrap_phase(np.array([-np.pi, np.pi, 3 * np.pi, -3 * np.pi + 1e-9, 0.5, 7.0]))
    assert w[0] == pytest.approx(np.pi) and w[1] == pytest.approx(np.pi) and w[2] == pytest.approx(np.pi)
    assert w[3] == pytest.approx(-np.pi + 1e-9) and w[4] == 0.5 and w[5] == pytest.approx(7.0 - 2 * np.pi)
    assert np.all(w > -np.pi) and np.all(w <= np.pi)


def test_mean_fluorescence_streams():
    movie = np.random.default_rng(2).integers(0, 255, size=(37, 5, 4)).astype(np.uint8)
    np.testing.assert_allclose(mean_fluorescence(movie, block_frames=8), movie.mean(axis=(1, 2)))


def test_phase_table():
    t, x, _ = _sinusoid(seconds=40)
    mean_field = compute_phase(x, FS, FilterParams())
    comps = compute_phase(np.vstack([x, -x]), FS, FilterParams())
    table = phase_table(t, mean_field, components=comps, component_ids=[4, 9])
    assert list(table.columns) == ["frame", "time_s", "filtered", "phase_rad", "amplitude",
                                   "phase_rad_4", "phase_rad_9"]
    assert len(table) == t.size
    with pytest.raises(PhaseError, match="times"):
        phase_table(t[:-1], mean_field)
    with pytest.raises(PhaseError, match="component_ids"):
        phase_table(t, mean_field, components=comps, component_ids=[1])


def test_phase_figure_renders():
    from ace_neuro.plots.common import figure_png
    from ace_neuro.plots.signals import plot_filtered_phase

    t, x, _ = _sinusoid(seconds=40)
    fig = plot_filtered_phase(t, x, compute_phase(x, FS, FilterParams()))
    assert "butter bandpass 0.1, 1.5 Hz" in fig.axes[0].get_title()
    assert figure_png(fig).startswith(b"\x89PNG")


def test_float32_phases_stay_within_the_half_open_interval():
    """float32(-pi) < -pi: a stored float32 phase at the interval's end must still read as within (-pi, pi]."""
    w = wrap_phase(np.array([-np.pi, np.pi, np.pi - 1e-8, -np.pi + 1e-8, 0.5]), dtype=np.float32)
    assert w.dtype == np.float32
    wide = w.astype(np.float64)
    assert ((wide > -np.pi) & (wide <= np.pi)).all()
    same_angle = np.angle(np.exp(1j * (wide - np.array([np.pi, np.pi, np.pi, -np.pi, 0.5]))))
    np.testing.assert_allclose(same_angle, 0, atol=1e-6)  # -pi + 1e-8 rounds to float32(-pi): stored as ~pi
