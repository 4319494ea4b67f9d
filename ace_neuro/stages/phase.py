"""Band-pass filter and Hilbert phase.

The original took the Hilbert phase of the raw mean-fluorescence trace and only
then (tried to) filter it; its filter call never ran. Here the order is:

1. remove the trace's mean;
2. filter, zero-phase (``n``, ``cut``, ``ftype``, ``btype`` from
   :class:`~ace_neuro.params.FilterParams`):

   * ``'butter'``: ``scipy.signal.butter(n, edges, btype, fs=fs, output='sos')``
     applied forward and backward with ``sosfiltfilt`` (a band-pass or
     band-stop of order ``n`` has ``2 n`` poles; the forward-backward pass
     squares the magnitude response and cancels the phase);
   * ``'fir'``: ``scipy.signal.firwin`` (Hamming window) applied forward and
     backward, i.e. ``filtfilt(b, 1, x)``, computed as one FFT convolution with
     ``b`` convolved with itself over the signal extended by odd reflection of
     ``3 * numtaps`` samples at each end (identical to ``filtfilt``'s output,
     much faster for long traces). ``numtaps = max(n, ceil(3.3 * fs / f_low))``
     made odd, where ``f_low`` is the lowest cut-off used: a Hamming-window FIR's
     transition band is about ``3.3 fs / numtaps`` wide, so this resolves the
     lowest edge (991 taps at 30 fps for 0.1 Hz). ``n`` is only a lower bound
     here (the original's ``n = 2`` would be a useless 2-tap FIR);

   edges: ``cut = (low, high)`` for ``'bandpass'`` and ``'bandstop'``; ``high``
   for ``'lowpass'``; ``low`` for ``'highpass'`` (a single number in the CSV gives
   ``low = high``);
3. phase = ``angle(hilbert(filtered))`` in radians, in ``(-pi, pi]`` (``-pi``
   is reported as ``pi``), and the amplitude envelope ``abs(hilbert(filtered))``.

With ``filter_enabled`` False the phase of the mean-removed raw trace is taken,
with a warning (a Hilbert phase is only meaningful for a narrow-band signal).
Traces are along the last axis; many components are processed at once.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import butter, firwin, hilbert, oaconvolve, sosfiltfilt

from ace_neuro.errors import ParameterError, RawDataError
from ace_neuro.movie import DEFAULT_BLOCK_FRAMES, FrameArray
from ace_neuro.params import FilterParams
from ace_neuro.stages.detrend import frame_means

log = logging.getLogger(__name__)

FILTER_TYPES = ("butter", "fir")
BAND_TYPES = ("bandpass", "lowpass", "highpass", "bandstop")
#: transition width of a Hamming-window FIR is about this many fs / numtaps
FIR_TRANSITION_FACTOR = 3.3
#: traces processed together along axis 0 (bounds the complex Hilbert buffers)
ROW_CHUNK = 64


class PhaseError(RawDataError):
    """Filter or phase inputs that cannot be used (cut-offs, sampling rate, trace length)."""


class PhaseParameterError(ParameterError, PhaseError):
    """A parameter value this stage cannot use; ``parameter`` names it."""


@dataclass(frozen=True)
class FilterDesign:
    """The filter actually applied.

    Attributes
    ----------
    ftype, btype : str
    edges_hz : tuple of float
        Cut-off(s) in Hz: (low, high) for band filters, one value otherwise.
    order : int
        Butterworth order ``n`` (poles: n, or 2n for band filters); for FIR the tap count.
    sos : ndarray or None
        Butterworth second-order sections.
    taps : ndarray or None
        FIR coefficients.
    """

    ftype: str
    btype: str
    edges_hz: tuple[float, ...]
    order: int
    sos: np.ndarray | None = None
    taps: np.ndarray | None = None

    @property
    def min_samples(self) -> int:
        """Shortest trace the zero-phase filter can run on."""
        if self.taps is not None:
            return 3 * self.taps.size + 1
        return 3 * (2 * self.sos.shape[0] + 1) + 1


@dataclass(frozen=True)
class PhaseResult:
    """Filtered traces, their Hilbert phase and amplitude envelope.

    Attributes
    ----------
    filtered : ndarray, shape (..., T)
        Mean-removed, filtered trace(s) (the mean-removed raw trace when the filter is off).
    phase : ndarray, shape (..., T)
        Instantaneous phase, radians, in (-pi, pi].
    amplitude : ndarray, shape (..., T)
        Hilbert amplitude envelope, in the trace's units.
    fs : float
        Sampling rate, Hz.
    params : FilterParams
        The parameters used.
    design : FilterDesign or None
        The filter applied; None when filtering was off.
    """

    filtered: np.ndarray
    phase: np.ndarray
    amplitude: np.ndarray
    fs: float
    params: FilterParams
    design: FilterDesign | None

    @property
    def filter_applied(self) -> bool:
        return self.design is not None


def mean_fluorescence(frames: FrameArray, *, block_frames: int = DEFAULT_BLOCK_FRAMES) -> np.ndarray:
    """Mean over pixels of every frame of a (cropped) movie, streamed. Shape (T,), float64."""
    return frame_means(frames, block_frames=block_frames)


def design_filter(fs: float, params: FilterParams) -> FilterDesign:
    """Check the cut-offs against ``fs`` and design the filter.

    Raises
    ------
    PhaseError
        Unknown ``ftype`` or ``btype``, a non-positive ``fs``, or cut-offs not in
        ``(0, fs / 2)`` (the message names ``cut``, ``fs`` and the Nyquist frequency).
    """
    if not (isinstance(fs, (int, float, np.floating)) and math.isfinite(fs) and fs > 0):
        raise PhaseError(f"sampling rate fs must be a positive number of Hz, got {fs!r}")
    if params.ftype not in FILTER_TYPES:
        raise PhaseParameterError(f"ftype = {params.ftype!r}: expected one of {FILTER_TYPES}", parameter='ftype')
    if params.btype not in BAND_TYPES:
        raise PhaseParameterError(f"btype = {params.btype!r}: expected one of {BAND_TYPES}", parameter='btype')
    if not params.n >= 1:
        raise PhaseParameterError(f"filter order n = {params.n!r}: expected a whole number >= 1", parameter='n')
    low, high = (float(c) for c in params.cut)
    if params.btype in ("bandpass", "bandstop"):
        edges: tuple[float, ...] = (low, high)
    else:
        edges = (high,) if params.btype == "lowpass" else (low,)
    nyquist = fs / 2.0
    if any(not 0 < e < nyquist for e in edges) or (len(edges) == 2 and not edges[0] < edges[1]):
        raise PhaseParameterError(
            f"cut = {tuple(params.cut)} Hz ({params.btype}, edges {edges}): every edge must lie strictly between "
            f"0 and the Nyquist frequency {nyquist:g} Hz (fs = {fs:g} Hz), low < high. Lower the cut-offs."
        , parameter='cut')
    wn = edges if len(edges) == 2 else edges[0]
    if params.ftype == "butter":
        sos = butter(int(params.n), wn, btype=params.btype, fs=fs, output="sos")
        return FilterDesign("butter", params.btype, edges, int(params.n), sos=sos)
    numtaps = max(int(params.n), int(math.ceil(FIR_TRANSITION_FACTOR * fs / min(edges))))
    numtaps += 1 - numtaps % 2  # odd: a type I filter, valid for every band type
    taps = firwin(numtaps, wn, pass_zero=params.btype, fs=fs)
    return FilterDesign("fir", params.btype, edges, numtaps, taps=taps)


def apply_filter(x: np.ndarray, design: FilterDesign) -> np.ndarray:
    """Zero-phase filtering along the last axis (``sosfiltfilt``, or ``filtfilt`` for FIR). float64 out."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if n < design.min_samples:
        other = " or use ftype 'butter' (it needs far fewer samples)" if design.ftype == "fir" else ""
        raise PhaseParameterError(
            f"the trace has {n} samples but the {design.ftype} {design.btype} filter at {design.edges_hz} Hz needs at "
            f"least {design.min_samples} for zero-phase filtering; record longer or raise the low cut-off{other}"
        , parameter='cut')
    if design.sos is not None:
        return sosfiltfilt(design.sos, x, axis=-1)
    pad = 3 * design.taps.size
    kernel = np.convolve(design.taps, design.taps[::-1])
    extended = _odd_extension(x, pad)
    kernel = kernel.reshape((1,) * (x.ndim - 1) + (-1,))
    return oaconvolve(extended, kernel, mode="same", axes=-1)[..., pad:pad + n]


def compute_phase(traces: np.ndarray, fs: float, params: FilterParams) -> PhaseResult:
    """Filter (zero-phase) then take the Hilbert phase, for one trace or many.

    Parameters
    ----------
    traces : ndarray, shape (T,) or (K, T)
        E.g. :func:`mean_fluorescence` of the cropped movie, or CNMF-E ``C``.
    fs : float
        Sampling rate in Hz: the recording's real frame rate.
    params : FilterParams

    Returns
    -------
    PhaseResult
        Arrays of the input's shape; float32 if the input is float32, else float64.
    """
    x = np.asarray(traces)
    if x.ndim not in (1, 2) or x.shape[-1] < 2:
        raise PhaseError(f"traces must have shape (T,) or (K, T) with T >= 2, got {x.shape}")
    if x.dtype.kind not in "fiu":
        raise PhaseError(f"traces must be numeric, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise PhaseError("traces contain NaN or inf; the filter would spread them over the whole trace")
    out_dtype = np.float32 if x.dtype == np.float32 else np.float64
    design = None
    if params.filter_enabled:
        design = design_filter(fs, params)
    else:
        if not (isinstance(fs, (int, float, np.floating)) and math.isfinite(fs) and fs > 0):
            raise PhaseError(f"sampling rate fs must be a positive number of Hz, got {fs!r}")
        log.warning("phase: filter_miniscope_data is off; taking the Hilbert phase of the unfiltered trace, which "
                    "is only meaningful if the trace is already narrow-band")
    rows = x.reshape(-1, x.shape[-1])
    filtered = np.empty(rows.shape, dtype=out_dtype)
    phase = np.empty(rows.shape, dtype=out_dtype)
    amplitude = np.empty(rows.shape, dtype=out_dtype)
    for r0 in range(0, rows.shape[0], ROW_CHUNK):
        chunk = rows[r0:r0 + ROW_CHUNK].astype(np.float64)
        chunk = chunk - chunk.mean(axis=-1, keepdims=True)
        if design is not None:
            chunk = apply_filter(chunk, design)
        analytic = hilbert(chunk, axis=-1)
        filtered[r0:r0 + ROW_CHUNK] = chunk
        phase[r0:r0 + ROW_CHUNK] = wrap_phase(np.angle(analytic), dtype=out_dtype)
        amplitude[r0:r0 + ROW_CHUNK] = np.abs(analytic)
    shape = x.shape
    return PhaseResult(filtered=filtered.reshape(shape), phase=phase.reshape(shape),
                       amplitude=amplitude.reshape(shape), fs=float(fs), params=params, design=design)


def wrap_phase(phase: np.ndarray, *, dtype=np.float64) -> np.ndarray:
    """Wrap angles (radians) into ``(-pi, pi]``, as ``dtype``.

    In float32, pi itself is not representable (float32(pi) > pi, float32(-pi) < -pi): the
    interval's ends become the largest float32 below pi, so the stored values stay in
    ``(-pi, pi]`` when read back as float64.
    """
    wrapped = np.asarray(phase, dtype=np.float64)
    wrapped = np.where((wrapped > math.pi) | (wrapped <= -math.pi),
                       math.pi - np.mod(math.pi - wrapped, 2 * math.pi), wrapped)
    out = wrapped.astype(dtype)
    if np.dtype(dtype) != np.float64:
        top = np.nextafter(np.asarray(math.pi, dtype=dtype), np.asarray(0, dtype=dtype))
        wide = out.astype(np.float64)
        out[(wide > math.pi) | (wide <= -math.pi)] = top  # -pi is the same angle as pi
    return out


def phase_table(times: np.ndarray, mean_field: PhaseResult, *, components: PhaseResult | None = None,
                component_ids=None) -> pd.DataFrame:
    """Per-frame table: ``frame``, ``time_s``, the mean field's ``filtered``, ``phase_rad`` and ``amplitude``,
    and, if given, one ``phase_rad_<id>`` column per component."""
    t = np.asarray(times, dtype=np.float64)
    if mean_field.phase.shape != t.shape:
        raise PhaseError(f"the mean-field phase has shape {mean_field.phase.shape} but times has {t.shape}")
    table = {"frame": np.arange(t.size, dtype=np.int64), "time_s": t,
             "filtered": mean_field.filtered, "phase_rad": mean_field.phase, "amplitude": mean_field.amplitude}
    if components is not None:
        ph = np.atleast_2d(components.phase)
        if ph.shape[-1] != t.size:
            raise PhaseError(f"component phases have {ph.shape[-1]} frames but times has {t.size}")
        ids = range(ph.shape[0]) if component_ids is None else list(component_ids)
        if len(ids) != ph.shape[0]:
            raise PhaseError(f"component_ids has {len(ids)} entries but there are {ph.shape[0]} component phases")
        table.update({f"phase_rad_{int(c)}": ph[i] for i, c in enumerate(ids)})
    return pd.DataFrame(table)


def _odd_extension(x: np.ndarray, n: int) -> np.ndarray:
    """Extend along the last axis by ``n`` samples of odd reflection at each end (as ``filtfilt`` pads)."""
    left = 2 * x[..., :1] - x[..., n:0:-1]
    right = 2 * x[..., -1:] - x[..., -2:-n - 2:-1]
    return np.concatenate([left, x, right], axis=-1)


__all__ = ["PhaseError", "PhaseResult", "FilterDesign", "mean_fluorescence", "design_filter", "apply_filter",
           "compute_phase", "wrap_phase", "phase_table", "FILTER_TYPES", "BAND_TYPES"]
