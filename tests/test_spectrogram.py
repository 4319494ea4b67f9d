"""Multitaper spectrogram."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ace_neuro.params import SpectrogramParams
from ace_neuro.stages.spectrogram import SpectrogramError, multitaper_spectrogram, spectrogram_table

FS = 30.0


def _sine(f_hz, amp, seconds, fs=FS, phase=0.4):
    t = np.arange(int(round(seconds * fs))) / fs
    return t, amp * np.sin(2 * np.pi * f_hz * t + phase)


def _ridge_centroid(spec, half_width_hz=0.2):
    """Power-weighted mean frequency around each window's peak (the multitaper peak is a plateau 2W wide)."""
    peak = spec.freqs[np.argmax(spec.power, axis=1)]
    near = np.abs(spec.freqs[None, :] - peak[:, None]) <= half_width_hz
    p = np.where(near, spec.power, 0.0)
    return (p * spec.freqs).sum(axis=1) / p.sum(axis=1)


def test_sinusoid_ridge_frequency_and_power():
    t, x = _sine(2.0, 3.0, 300)
    spec = multitaper_spectrogram(x + 7.0, FS, SpectrogramParams())  # 30 s windows, 3 s step, 0-15 Hz, NW 2
    assert spec.power.shape == (spec.times.size, spec.freqs.size)
    assert spec.n_tapers == 3 and spec.window_samples == 900 and spec.nfft == 1024
    ridge = spec.freqs[np.argmax(spec.power, axis=1)]
    assert np.all(np.abs(ridge - 2.0) <= 2.0 / 30)  # within the taper half-bandwidth W = NW / window_length
    np.testing.assert_allclose(_ridge_centroid(spec), 2.0, atol=0.005)
    # Parseval: the whole one-sided PSD integrates to the variance, amp**2 / 2 (the mean is removed)
    total = spec.power.sum(axis=1) * spec.df
    np.testing.assert_allclose(total, 3.0 ** 2 / 2, rtol=0.05)
    # the ridge holds that power within the taper bandwidth (+-W = NW / window_length = 0.067 Hz)
    band = np.abs(spec.freqs - 2.0) <= 2.0 / 30 + spec.df
    np.testing.assert_allclose(spec.power[:, band].sum(axis=1) * spec.df, 4.5, rtol=0.05)
    assert np.allclose(spec.power_db, 10 * np.log10(spec.power))


def test_white_noise_level_and_parseval():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2.0, size=int(600 * FS))
    spec = multitaper_spectrogram(x, FS, SpectrogramParams())
    # flat one-sided PSD of white noise: variance / (fs / 2) (0 Hz excluded: each window's mean is removed)
    np.testing.assert_allclose(np.mean(spec.power[:, 1:]), 4.0 / (FS / 2), rtol=0.05)
    np.testing.assert_allclose(np.mean(spec.power.sum(axis=1) * spec.df), 4.0, rtol=0.05)


def test_window_times_are_centres_in_seconds():
    _, x = _sine(1.0, 1.0, 100)
    spec = multitaper_spectrogram(x, FS, SpectrogramParams(window_length=10, window_step=2))
    assert spec.step_samples == 60 and spec.window_samples == 300
    np.testing.assert_allclose(spec.times[:3], [(0 + 299) / 2 / FS, (60 + 359) / 2 / FS, (120 + 419) / 2 / FS])
    assert spec.times.size == (3000 - 300) // 60 + 1
    offset_times = np.arange(3000) / FS + 1000.0  # times from the recording's clock are used as given
    spec2 = multitaper_spectrogram(x, FS, SpectrogramParams(window_length=10, window_step=2), times=offset_times)
    np.testing.assert_allclose(spec2.times, spec.times + 1000.0)


def test_chirp_ridge_follows_the_frequency():
    fs = FS
    seconds = 600
    t = np.arange(int(seconds * fs)) / fs
    f0, f1 = 1.0, 8.0
    inst_freq = f0 + (f1 - f0) * t / seconds
    x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds)))
    spec = multitaper_spectrogram(x, fs, SpectrogramParams(window_length=10, window_step=5))
    ridge = spec.freqs[np.argmax(spec.power, axis=1)]
    expected = np.interp(spec.times, t, inst_freq)
    assert np.max(np.abs(ridge - expected)) < 0.15
    assert np.all(np.diff(ridge) >= -spec.df)  # rises monotonically


def test_29_97_fps_is_not_truncated():
    fs = 29.97
    _, x = _sine(5.0, 1.0, 300, fs=fs)
    spec = multitaper_spectrogram(x, fs, SpectrogramParams())
    assert spec.fs == 29.97
    assert spec.window_samples == round(30 * 29.97) == 899
    assert spec.freqs[1] - spec.freqs[0] == pytest.approx(29.97 / 1024)
    np.testing.assert_allclose(_ridge_centroid(spec), 5.0, atol=0.01)
    # with the original's int(29.97) = 29 Hz the same data would put the ridge at 5 * 29 / 29.97 = 4.84 Hz
    wrong = multitaper_spectrogram(x, 29, SpectrogramParams())
    np.testing.assert_allclose(_ridge_centroid(wrong), 5.0 * 29 / 29.97, atol=0.01)


def test_freq_lims_capped_at_nyquist_without_mutating_params():
    params = SpectrogramParams(freq_lims=(0.5, 40.0))
    before = dataclasses.asdict(params)
    _, x = _sine(2.0, 1.0, 120, fs=20.0)
    spec = multitaper_spectrogram(x, 20.0, params)
    assert dataclasses.asdict(params) == before and params.freq_lims == (0.5, 40.0)
    assert spec.params is params
    assert spec.freq_lims_used == (0.5, 10.0)
    assert spec.freqs.min() >= 0.5 and spec.freqs.max() == pytest.approx(10.0)


def test_spectrogram_table_long_form():
    _, x = _sine(2.0, 1.0, 60)
    spec = multitaper_spectrogram(x, FS, SpectrogramParams(window_length=10, window_step=5, freq_lims=(1, 3)))
    table = spectrogram_table(spec)
    assert list(table.columns) == ["time_s", "frequency_hz", "power", "power_db"]
    assert len(table) == spec.power.size
    row = table.iloc[spec.freqs.size + 2]
    assert row.time_s == spec.times[1] and row.frequency_hz == spec.freqs[2] and row.power == spec.power[1, 2]


@pytest.mark.parametrize("kwargs, needle", [
    (dict(trace=np.zeros(100)), "shorter than one window"),
    (dict(params=SpectrogramParams(freq_lims=(20.0, 30.0))), "Nyquist"),
    (dict(fs=0.0), "fs"),
    (dict(trace=np.zeros((2, 2000))), "one-dimensional"),
    (dict(params=SpectrogramParams(window_length=0.01)), "window_length"),
    (dict(params=SpectrogramParams(window_step=0.001)), "window_step"),
    (dict(times=np.zeros(5)), "times has shape"),
])
def test_errors(kwargs, needle):
    args = dict(trace=np.random.default_rng(0).normal(size=2000), fs=FS, params=SpectrogramParams(window_length=10))
    args.update(kwargs)
    times = args.pop("times", None)
    with pytest.raises(SpectrogramError, match=needle):
        multitaper_spectrogram(args["trace"], args["fs"], args["params"], times=times)


def test_spectrogram_figure_renders():
    from ace_neuro.plots.common import figure_png
    from ace_neuro.plots.signals import plot_spectrogram

    _, x = _sine(2.0, 1.0, 120)
    spec = multitaper_spectrogram(x, FS, SpectrogramParams())
    fig = plot_spectrogram(spec)
    assert "3 tapers, fs = 30 Hz" in fig.axes[0].get_title()
    assert figure_png(fig).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="time_unit"):
        plot_spectrogram(spec, time_unit="h")
