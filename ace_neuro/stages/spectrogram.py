"""Multitaper spectrogram of a trace, e.g. the mean fluorescence of the cropped movie.

For each window of ``window_length`` seconds, stepped by ``window_step`` seconds:

* window length ``N = round(window_length * fs)`` samples and step
  ``round(window_step * fs)`` samples, at the real sampling rate (29.97 fps stays
  29.97; the original truncated it to 29);
* the window's mean is removed;
* it is multiplied by ``K = floor(2 NW - 1)`` DPSS (Slepian) tapers with
  time-bandwidth ``NW = time_bandwidth`` (``scipy.signal.windows.dpss``, unit
  energy), zero-padded to ``nfft = 2 ** ceil(log2(N))`` and Fourier transformed;
* the PSD is the average over tapers of ``|X(f)|**2 / fs``, one-sided (doubled
  except at 0 Hz and Nyquist), so that ``sum(psd) * df`` equals the window's
  tapered energy, i.e. its variance for a stationary signal (Parseval), in the
  trace's units squared per Hz;
* frequencies are kept within ``freq_lims``, the upper limit capped at Nyquist
  (``fs / 2``) without touching the caller's parameters (the cap is recorded in
  :attr:`Spectrogram.freq_lims_used`).

Window times are the centres of the windows, in seconds (from the frame times
when given). All windows are computed at once: one real FFT over a strided view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal.windows import dpss

from ace_neuro.errors import ParameterError, RawDataError
from ace_neuro.params import SpectrogramParams


class SpectrogramError(RawDataError):
    """Spectrogram inputs that cannot be used (trace too short, bad rates or limits)."""


class SpectrogramParameterError(ParameterError, SpectrogramError):
    """A parameter value this stage cannot use; ``parameter`` names it."""


@dataclass(frozen=True)
class Spectrogram:
    """A multitaper spectrogram.

    Attributes
    ----------
    times : ndarray, shape (n_windows,)
        Window centre times, seconds.
    freqs : ndarray, shape (n_freqs,)
        Frequencies, Hz, within :attr:`freq_lims_used`.
    power : ndarray, shape (n_windows, n_freqs)
        One-sided power spectral density, (trace units)^2 / Hz.
    power_db : ndarray, shape (n_windows, n_freqs)
        ``10 * log10(power)`` (power floored at the smallest positive float64).
    params : SpectrogramParams
        The parameters as given (never modified).
    fs : float
        Sampling rate used, Hz.
    freq_lims_used : (float, float)
        ``freq_lims`` with the upper limit capped at Nyquist.
    window_samples, step_samples, n_tapers, nfft : int
    """

    times: np.ndarray
    freqs: np.ndarray
    power: np.ndarray
    power_db: np.ndarray
    params: SpectrogramParams
    fs: float
    freq_lims_used: tuple[float, float]
    window_samples: int
    step_samples: int
    n_tapers: int
    nfft: int

    @property
    def df(self) -> float:
        """Frequency resolution of the FFT grid, Hz."""
        return self.fs / self.nfft


def multitaper_spectrogram(trace: np.ndarray, fs: float, params: SpectrogramParams, *,
                           times: np.ndarray | None = None) -> Spectrogram:
    """Multitaper spectrogram of one trace.

    Parameters
    ----------
    trace : ndarray, shape (T,)
    fs : float
        Sampling rate, Hz (the recording's real frame rate).
    params : SpectrogramParams
        ``window_length`` and ``window_step`` (s), ``freq_lims`` (Hz),
        ``time_bandwidth`` (NW).
    times : ndarray, shape (T,), optional
        Sample times, seconds; window centres are taken from them. Default ``arange(T) / fs``.

    Returns
    -------
    Spectrogram
    """
    x = np.asarray(trace, dtype=np.float64)
    if x.ndim != 1:
        raise SpectrogramError(f"the trace must be one-dimensional (T,), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SpectrogramError("the trace contains NaN or inf")
    if not (isinstance(fs, (int, float, np.floating)) and math.isfinite(fs) and fs > 0):
        raise SpectrogramError(f"sampling rate fs must be a positive number of Hz, got {fs!r}")
    fs = float(fs)
    w = spectrogram_windows(fs, params, x.size)
    n_win, step, nw, k, lo_used, hi_used = w.n_win, w.step, w.nw, w.n_tapers, w.lo_hz, w.hi_hz
    t = _sample_times(times, x.size, fs)

    nfft = 1 << (n_win - 1).bit_length()
    tapers = dpss(n_win, nw, Kmax=k, norm=2)  # (K, N), unit energy
    windows = sliding_window_view(x, n_win)[::step]  # (n_windows, N), a view
    starts = np.arange(windows.shape[0]) * step
    centred = windows - windows.mean(axis=1, keepdims=True)
    spectra = np.fft.rfft(centred[:, None, :] * tapers[None, :, :], n=nfft, axis=-1)
    psd = (spectra.real ** 2 + spectra.imag ** 2).mean(axis=1) / fs
    psd[:, 1:] *= 2.0
    if nfft % 2 == 0:
        psd[:, -1] /= 2.0  # the Nyquist bin has no mirror image
    freqs = np.fft.rfftfreq(nfft, d=1.0 / fs)
    keep = (freqs >= lo_used) & (freqs <= hi_used)
    power = psd[:, keep]
    centres = 0.5 * (t[starts] + t[starts + n_win - 1])
    return Spectrogram(times=centres, freqs=freqs[keep], power=power,
                       power_db=10.0 * np.log10(np.maximum(power, np.finfo(np.float64).tiny)),
                       params=params, fs=fs, freq_lims_used=(lo_used, hi_used), window_samples=n_win,
                       step_samples=step, n_tapers=k, nfft=nfft)



@dataclass(frozen=True)
class SpectrogramWindows:
    """How a trace is cut into tapered windows (samples), and the frequency range kept (Hz)."""

    n_win: int
    step: int
    nw: float
    n_tapers: int
    lo_hz: float
    hi_hz: float


def spectrogram_windows(fs: float, params: SpectrogramParams, n_samples: int) -> SpectrogramWindows:
    """The windows of a trace of ``n_samples`` at ``fs`` Hz.

    Raises :class:`SpectrogramParameterError` for a window, step, time-bandwidth or frequency range that
    this trace cannot have. It needs only the frame rate and the length, so front ends call it before
    any compute.
    """
    fs = float(fs)
    n_win = int(round(params.window_length * fs))
    step = int(round(params.window_step * fs))
    if n_win < 2:
        raise SpectrogramParameterError(f"window_length = {params.window_length} s is {n_win} samples at {fs:g} "
                                        f"Hz; use a window of at least 2 samples", parameter="window_length")
    if step < 1:
        raise SpectrogramParameterError(f"window_step = {params.window_step} s is less than one sample at {fs:g} "
                                        f"Hz", parameter="window_step")
    if n_samples < n_win:
        raise SpectrogramParameterError(f"the recording lasts {n_samples / fs:.3g} s ({n_samples} frames), shorter "
                                        f"than one window of the spectrogram (window_length = {params.window_length} s); "
                                        f"use a shorter window_length", parameter="window_length")
    nw = float(params.time_bandwidth)
    k = int(math.floor(2 * nw - 1))
    if k < 1 or nw >= n_win / 2:
        raise SpectrogramParameterError(f"time_bandwidth = {nw}: need 1 <= NW < window samples / 2 ({n_win / 2:g})",
                                        parameter="time_bandwidth")
    nyquist = fs / 2.0
    lo_used, hi_used = max(float(params.freq_lims[0]), 0.0), min(float(params.freq_lims[1]), nyquist)
    if not lo_used < hi_used:
        raise SpectrogramParameterError(f"freq_lims = {tuple(params.freq_lims)} Hz leaves no frequency below the "
                                        f"Nyquist frequency {nyquist:g} Hz (fs = {fs:g} Hz)", parameter="freq_lims")
    return SpectrogramWindows(n_win, step, nw, k, lo_used, hi_used)


def spectrogram_table(spec: Spectrogram) -> pd.DataFrame:
    """Long-form table: one row per (window, frequency) with ``time_s``, ``frequency_hz``, ``power``, ``power_db``."""
    n_t, n_f = spec.power.shape
    return pd.DataFrame({
        "time_s": np.repeat(spec.times, n_f),
        "frequency_hz": np.tile(spec.freqs, n_t),
        "power": spec.power.ravel(),
        "power_db": spec.power_db.ravel(),
    })


def _sample_times(times, n: int, fs: float) -> np.ndarray:
    if times is None:
        return np.arange(n) / fs
    t = np.asarray(times, dtype=np.float64)
    if t.shape != (n,):
        raise SpectrogramError(f"times has shape {t.shape} but the trace has {n} samples")
    if not np.all(np.isfinite(t)):
        raise SpectrogramError("times contain NaN or inf")
    return t


__all__ = ["Spectrogram", "SpectrogramError", "multitaper_spectrogram", "spectrogram_table"]
