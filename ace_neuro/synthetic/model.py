"""Forward model of a 1-photon miniscope recording with exact ground truth.

The scene at frame ``t`` is

    scene_t = (sum_b S_b * g_b(t) + sum_k A_k * c_k(t)) * V * bleach(t)

with ``S_b``/``g_b`` the background images and time courses, ``A_k`` the neuron
footprints (max 1), ``c_k`` the calcium traces in 8-bit counts at the footprint
peak, ``V`` the static vessel transmission and ``bleach`` an exponential
photobleaching factor. The scene is then moved by the frame's displacement field
(content convention: ``observed(y, x) = scene(y - dy, x - dx)``), photon (Poisson)
and read (Gaussian) noise are added, and the result is rounded and clipped to
``uint8``.

Everything random is drawn from named sub-streams of ``SyntheticConfig.seed``;
the noise of frame ``t`` comes from its own stream seeded by ``(seed, t)``, so any
block of frames renders identically on its own or as part of the whole movie.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
from scipy import ndimage, signal, sparse

from ace_neuro.errors import ParameterError

log = logging.getLogger(__name__)

# Sub-stream tags of the seed (fixed forever: changing one changes every recording).
_TAG_NEURONS = 1
_TAG_SPIKES = 2
_TAG_BACKGROUND = 3
_TAG_VESSELS = 4
_TAG_MOTION = 5
_TAG_NONRIGID = 6
_TAG_NOISE = 7

_EDGE_SOFTNESS_PX = 0.5     # width of the soma's soft edge before the optical blur
_FOOTPRINT_FLOOR = 0.02     # footprint values below this (relative to the peak) are exactly 0
_MOTION_TIMESCALE_S = 1.5   # correlation time of the rigid random walk
_NONRIGID_TIMESCALE_S = 2.5
_NONRIGID_NODE_SPACING_PX = 64.0
_NEUROPIL_TIMESCALE_S = 1.5

MOTION_KINDS = ("none", "rigid", "nonrigid")


class SyntheticConfigError(ParameterError):
    """An invalid synthetic-recording setting; the message names the field and how to fix it."""


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of a synthetic 1-photon miniscope recording.

    Intensities are in 8-bit counts of the final movie; lengths in pixels;
    times in seconds.

    Attributes
    ----------
    height, width : int
        Frame size in pixels.
    n_frames : int
        Number of frames T.
    frame_rate : float
        Frames per second.
    n_neurons : int
        Number of neurons K.
    soma_radius_px : (float, float)
        Range of soma radii (uniform); somas are slightly elliptical.
    psf_sigma_px : float
        Sigma of the Gaussian 1-photon blur applied to each soma.
    neuron_brightness : (float, float)
        Range (log-uniform) of each neuron's typical single-spike peak dF in counts.
    spike_amplitude_cv : float
        Coefficient of variation of spike amplitudes within a neuron (log-normal).
    decay_time, rise_time : float
        Calcium decay and rise time constants (rise only used when ``ar_order == 2``).
    ar_order : int
        1: instantaneous rise, exponential decay. 2: difference of exponentials.
    spike_rate_hz : float
        Mean Poisson firing rate; each neuron's rate is this times a log-normal factor.
    background_level : float
        Mean background in counts (brighter than the neurons, as in real 1-photon data).
    background_fluctuation : float
        Relative standard deviation of the slow global background modulation.
    background_timescale_s : float
        Correlation time of that modulation.
    neuropil_fraction : float
        Peak of a second, finer and faster fluctuating background component, relative to
        ``background_level``.
    n_vessels : int
        Number of dark static blood vessels.
    vessel_depth : (float, float)
        Range of the fraction of light a vessel absorbs at its centre line.
    bleach_fraction : float
        Fraction of fluorescence lost over the recording (exponential decay).
    motion : {'none', 'rigid', 'nonrigid'}
        Kind of brain motion.
    max_shift_px : float
        Bound of the rigid displacement on each axis (strict).
    nonrigid_amplitude_px : float
        Bound of the non-rigid deviation from the rigid displacement on each axis.
    jump_rate_hz : float
        Rate of sudden displacements (which then relax back over 0.3-2 s).
    gain : float
        Photons per count (Poisson noise: variance = counts / gain).
    noise_model : {'poisson', 'gaussian'}
        'poisson' draws exact Poisson photon counts; 'gaussian' draws Gaussian noise of the
        same variance (indistinguishable at miniscope photon counts, ~3x faster: for
        large benchmark recordings).
    read_noise : float
        Standard deviation of the Gaussian read noise, in counts.
    overlap_fraction : float
        Fraction of the neurons placed touching another neuron so that footprints overlap.
    seed : int
        Seed of every random draw.
    """

    height: int = 200
    width: int = 200
    n_frames: int = 1000
    frame_rate: float = 30.0
    n_neurons: int = 40
    soma_radius_px: tuple[float, float] = (3.5, 6.0)
    psf_sigma_px: float = 1.5
    neuron_brightness: tuple[float, float] = (8.0, 45.0)
    spike_amplitude_cv: float = 0.3
    decay_time: float = 0.4
    rise_time: float = 0.05
    ar_order: int = 1
    spike_rate_hz: float = 0.3
    background_level: float = 80.0
    background_fluctuation: float = 0.05
    background_timescale_s: float = 8.0
    neuropil_fraction: float = 0.1
    n_vessels: int = 3
    vessel_depth: tuple[float, float] = (0.25, 0.5)
    bleach_fraction: float = 0.2
    motion: str = "rigid"
    max_shift_px: float = 4.0
    nonrigid_amplitude_px: float = 1.5
    jump_rate_hz: float = 0.05
    gain: float = 8.0
    noise_model: str = "poisson"
    read_noise: float = 1.0
    overlap_fraction: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("soma_radius_px", "neuron_brightness", "vessel_depth"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise SyntheticConfigError(f"{name} = {value!r}: give a (low, high) pair")
            object.__setattr__(self, name, (float(value[0]), float(value[1])))
        _validate_config(self)

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.n_frames / self.frame_rate

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SyntheticConfig":
        """Inverse of :meth:`to_dict` (unknown names are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SyntheticConfigError(f"unknown SyntheticConfig fields {unknown}; known: {sorted(names)}")
        return cls(**values)


def _validate_config(c: SyntheticConfig) -> None:
    def need(ok: bool, name: str, what: str) -> None:
        if not ok:
            raise SyntheticConfigError(f"SyntheticConfig.{name} = {getattr(c, name)!r}: {what}")

    for name in ("height", "width"):
        need(isinstance(getattr(c, name), int) and getattr(c, name) >= 16, name, "give a whole number >= 16 pixels")
    need(isinstance(c.n_frames, int) and c.n_frames >= 1, "n_frames", "give a whole number >= 1")
    need(c.frame_rate > 0, "frame_rate", "give frames per second > 0")
    need(isinstance(c.n_neurons, int) and c.n_neurons >= 0, "n_neurons", "give a whole number >= 0")
    lo, hi = c.soma_radius_px
    need(1.0 <= lo <= hi, "soma_radius_px", "give (low, high) with 1 <= low <= high")
    need(2 * (hi + 1) < min(c.height, c.width), "soma_radius_px", "somas must fit in the frame")
    need(c.psf_sigma_px >= 0, "psf_sigma_px", "give a blur sigma >= 0")
    lo, hi = c.neuron_brightness
    need(0 < lo <= hi, "neuron_brightness", "give (low, high) counts with 0 < low <= high")
    need(c.spike_amplitude_cv >= 0, "spike_amplitude_cv", "give a value >= 0")
    need(c.decay_time > 0, "decay_time", "give seconds > 0")
    need(c.ar_order in (1, 2), "ar_order", "give 1 or 2")
    if c.ar_order == 2:
        need(0 < c.rise_time < c.decay_time, "rise_time", "give seconds with 0 < rise_time < decay_time")
    need(c.spike_rate_hz >= 0, "spike_rate_hz", "give a rate >= 0")
    need(c.background_level > 0, "background_level", "give counts > 0")
    need(0 <= c.background_fluctuation < 0.5, "background_fluctuation", "give a relative sd in [0, 0.5)")
    need(c.background_timescale_s > 0, "background_timescale_s", "give seconds > 0")
    need(0 <= c.neuropil_fraction < 1, "neuropil_fraction", "give a fraction in [0, 1)")
    need(isinstance(c.n_vessels, int) and c.n_vessels >= 0, "n_vessels", "give a whole number >= 0")
    lo, hi = c.vessel_depth
    need(0 <= lo <= hi < 1, "vessel_depth", "give (low, high) with 0 <= low <= high < 1")
    need(0 <= c.bleach_fraction < 1, "bleach_fraction", "give a fraction in [0, 1)")
    need(c.motion in MOTION_KINDS, "motion", "give one of " + ", ".join(repr(m) for m in MOTION_KINDS))
    need(c.max_shift_px >= 0, "max_shift_px", "give pixels >= 0")
    need(c.nonrigid_amplitude_px >= 0, "nonrigid_amplitude_px", "give pixels >= 0")
    need(c.max_shift_px + c.nonrigid_amplitude_px < min(c.height, c.width) / 4, "max_shift_px",
         "keep the motion below a quarter of the frame")
    need(c.jump_rate_hz >= 0, "jump_rate_hz", "give a rate >= 0")
    need(c.gain > 0, "gain", "give photons per count > 0")
    need(c.noise_model in ("poisson", "gaussian"), "noise_model", "give 'poisson' or 'gaussian'")
    need(c.read_noise >= 0, "read_noise", "give counts >= 0")
    need(0 <= c.overlap_fraction <= 1, "overlap_fraction", "give a fraction in [0, 1]")
    need(isinstance(c.seed, int) and c.seed >= 0, "seed", "give a whole number >= 0")


# --------------------------------------------------------------------------- ground truth
@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Everything that went into a synthetic recording.

    Attributes
    ----------
    footprints : ndarray, shape (K, H, W), float32
        Neuron footprints, each with maximum 1 (exact zeros outside the support).
    centers : ndarray, shape (K, 2), float
        Soma centres (y, x) in pixels, in the unmoved scene.
    traces : ndarray, shape (K, T), float32
        Calcium C in counts at the footprint peak, before vessels and bleaching:
        the neural part of the scene is ``sum_k footprints[k] * traces[k, t]``.
    spikes : ndarray, shape (K, T), float32
        Spike amplitudes driving the AR model (0 where none):
        ``traces[k, t] = sum_i ar_coefficients[i] * traces[k, t-1-i] + spikes[k, t]``.
    shifts : ndarray, shape (T, 2), float32
        Rigid displacement (dy, dx) of the content, pixels.
    displacement : ndarray, shape (T, 2, gy, gx), float32, or None
        Non-rigid part of the displacement on a coarse grid of nodes (see
        :func:`displacement_at` for the full-resolution field); None unless
        ``motion == 'nonrigid'``.
    background_spatial : ndarray, shape (B, H, W), float32
        Background images in counts (B = 2: global illumination, neuropil).
    background_temporal : ndarray, shape (B, T), float32
        Their time courses (around 1).
    bleach : ndarray, shape (T,), float32
        Multiplicative photobleaching factor.
    vessels : ndarray, shape (H, W), float32
        Multiplicative transmission (< 1 on vessels, 1 elsewhere).
    noise_std : ndarray, shape (H, W), float32
        Approximate noise standard deviation per pixel in counts (Poisson at the mean
        scene level, read noise and quantisation).
    pnr : ndarray, shape (K,), float32
        Peak-to-noise ratio: max over t of the neuron's observed peak contribution
        (trace x vessel x bleach at the footprint peak) over ``noise_std`` there.
    snr : ndarray, shape (K,), float32
        Mean observed peak response to a spike over ``noise_std`` (0 if no spike).
    pnr_cnmfe : ndarray, shape (K,), float32
        The PNR CNMF-E's seeding sees with ``gSig=(3, 3)``, ``gSiz=(13, 13)`` (spatially
        filtered; about 2-3x ``pnr``): the quantity ``min_pnr`` thresholds. See :func:`cnmfe_pnr`.
    frame_rate : float
        Frames per second.
    config : SyntheticConfig
        The settings that produced this truth.
    ar_coefficients : ndarray, shape (p,), float64
        The AR coefficients (g,) or (g1, g2) linking ``spikes`` to ``traces``.
    radii : ndarray, shape (K,), float32
        Soma radii in pixels.
    brightness : ndarray, shape (K,), float32
        Each neuron's typical single-spike peak in counts.
    grid_y, grid_x : ndarray
        Pixel positions of the non-rigid grid nodes (empty unless non-rigid).
    """

    footprints: np.ndarray
    centers: np.ndarray
    traces: np.ndarray
    spikes: np.ndarray
    shifts: np.ndarray
    displacement: np.ndarray | None
    background_spatial: np.ndarray
    background_temporal: np.ndarray
    bleach: np.ndarray
    vessels: np.ndarray
    noise_std: np.ndarray
    pnr: np.ndarray
    snr: np.ndarray
    pnr_cnmfe: np.ndarray
    frame_rate: float
    config: SyntheticConfig
    ar_coefficients: np.ndarray
    radii: np.ndarray
    brightness: np.ndarray
    grid_y: np.ndarray
    grid_x: np.ndarray
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n_frames(self) -> int:
        return int(self.traces.shape[1])

    @property
    def n_neurons(self) -> int:
        return int(self.footprints.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return int(self.vessels.shape[0]), int(self.vessels.shape[1])

    @property
    def times(self) -> np.ndarray:
        """Nominal frame times in seconds, shape (T,)."""
        return np.arange(self.n_frames) / self.frame_rate


# --------------------------------------------------------------------------- random streams
def _rng(seed: int, tag: int, *more: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, tag, *more]))


def _smooth_noise(rng: np.random.Generator, n: int, timescale_frames: float) -> np.ndarray:
    """Stationary, unit-variance noise low-passed twice with a one-pole filter, shape (n,)."""
    a = math.exp(-1.0 / max(timescale_frames, 1e-3))
    burn = int(math.ceil(5 * timescale_frames))
    w = rng.standard_normal(n + burn)
    x = signal.lfilter([1 - a], [1, -a], signal.lfilter([1 - a], [1, -a], w))
    impulse = np.zeros(int(math.ceil(40 * timescale_frames)) + 10)
    impulse[0] = 1.0
    h = signal.lfilter([1 - a], [1, -a], signal.lfilter([1 - a], [1, -a], impulse))
    return x[burn:] / math.sqrt(float(np.sum(h * h)))


# --------------------------------------------------------------------------- neurons
def _place_neurons(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres (K, 2) and radii (K,); a fraction placed touching a partner."""
    k = cfg.n_neurons
    radii = rng.uniform(*cfg.soma_radius_px, size=k)
    n_pairs = min(int(round(cfg.overlap_fraction * k / 2)), k // 2)
    n_free = k - n_pairs
    centers = np.zeros((k, 2))
    placed: list[int] = []

    def fits(i: int, c: np.ndarray, partner: int | None) -> bool:
        m = radii[i] + 1.0
        if not (m <= c[0] <= cfg.height - 1 - m and m <= c[1] <= cfg.width - 1 - m):
            return False
        for j in placed:
            d = math.hypot(*(c - centers[j]))
            need = (0.8 if j == partner else 1.4) * (radii[i] + radii[j])
            if j == partner:
                continue
            if d < need:
                return False
        return True

    for i in range(n_free):
        for _ in range(2000):
            c = rng.uniform([0, 0], [cfg.height - 1, cfg.width - 1])
            if fits(i, c, None):
                break
        else:
            raise SyntheticConfigError(
                f"SyntheticConfig.n_neurons = {k}: could not place neuron {i} without overlapping "
                f"others in a {cfg.height}x{cfg.width} frame; use fewer neurons or a larger frame")
        centers[i] = c
        placed.append(i)
    partners = rng.choice(n_free, size=n_pairs, replace=False) if n_pairs else np.zeros(0, int)
    for i, j in zip(range(n_free, k), partners):
        for _ in range(2000):
            ang = rng.uniform(0, 2 * math.pi)
            dist = rng.uniform(0.85, 1.15) * (radii[i] + radii[j])
            c = centers[j] + dist * np.array([math.sin(ang), math.cos(ang)])
            if fits(i, c, int(j)):
                break
        else:
            raise SyntheticConfigError(
                f"SyntheticConfig.overlap_fraction = {cfg.overlap_fraction}: could not place an "
                f"overlapping partner for neuron {j}; lower overlap_fraction or n_neurons")
        centers[i] = c
        placed.append(i)
    return centers, radii


def _footprint(cfg: SyntheticConfig, center: np.ndarray, radius: float, aspect: float,
               angle: float) -> np.ndarray:
    """One soma: soft-edged ellipse blurred by the 1-photon PSF, max 1, shape (H, W)."""
    h, w = cfg.height, cfg.width
    half = int(math.ceil(radius * math.sqrt(aspect) + 4 * cfg.psf_sigma_px + 3))
    cy, cx = center
    y0, x0 = int(math.floor(cy)) - half, int(math.floor(cx)) - half
    yy, xx = np.mgrid[y0:y0 + 2 * half + 1, x0:x0 + 2 * half + 1].astype(float)
    dy, dx = yy - cy, xx - cx
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    a, b = radius * math.sqrt(aspect), radius / math.sqrt(aspect)
    edge_px = (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * radius
    soma = 1.0 / (1.0 + np.exp(np.clip(edge_px / _EDGE_SOFTNESS_PX, -50, 50)))
    if cfg.psf_sigma_px > 0:
        soma = ndimage.gaussian_filter(soma, cfg.psf_sigma_px, mode="constant")
    full = np.zeros((h, w), dtype=np.float64)
    ys, xs = slice(max(y0, 0), min(y0 + 2 * half + 1, h)), slice(max(x0, 0), min(x0 + 2 * half + 1, w))
    full[ys, xs] = soma[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    full /= full.max()
    full[full < _FOOTPRINT_FLOOR] = 0.0
    return full.astype(np.float32)


def _ar_coefficients(cfg: SyntheticConfig) -> tuple[np.ndarray, float]:
    """AR coefficients and the peak of the impulse response (spike of size 1)."""
    d = math.exp(-1.0 / (cfg.decay_time * cfg.frame_rate))
    if cfg.ar_order == 1:
        return np.array([d]), 1.0
    r = math.exp(-1.0 / (cfg.rise_time * cfg.frame_rate))
    g = np.array([d + r, -d * r])
    n = int(math.ceil(10 * cfg.decay_time * cfg.frame_rate)) + 5
    impulse = np.zeros(n)
    impulse[0] = 1.0
    h = signal.lfilter([1.0], [1.0, -g[0], -g[1]], impulse)
    return g, float(h.max())


def _simulate_activity(cfg: SyntheticConfig, rng: np.random.Generator, brightness: np.ndarray,
                       g: np.ndarray, peak: float) -> tuple[np.ndarray, np.ndarray]:
    """Spikes (K, T) and calcium traces (K, T), float32."""
    k, t = cfg.n_neurons, cfg.n_frames
    rates = cfg.spike_rate_hz * np.exp(rng.normal(-0.08, 0.4, size=k))
    counts = rng.poisson(rates[:, None] / cfg.frame_rate, size=(k, t)).astype(np.float32)
    cv = cfg.spike_amplitude_cv
    sig = math.sqrt(math.log1p(cv * cv))
    hit = np.nonzero(counts)
    amp = np.exp(rng.normal(-sig * sig / 2, sig, size=hit[0].size))
    spikes = np.zeros((k, t), dtype=np.float32)
    spikes[hit] = counts[hit] * amp * brightness[hit[0]] / peak
    del counts
    traces = np.empty((k, t), dtype=np.float32)
    den = np.concatenate([[1.0], -g])
    for i in range(k):
        traces[i] = np.maximum(signal.lfilter([1.0], den, spikes[i].astype(np.float64)), 0)
    return spikes, traces


# --------------------------------------------------------------------------- background, vessels
def _background(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = cfg.height, cfg.width
    size = float(max(h, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    # global illumination: vignetting around an off-centre optical axis + broad blobs
    cy, cx = rng.normal(h / 2, 0.1 * h), rng.normal(w / 2, 0.1 * w)
    img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.5 * size) ** 2))
    for _ in range(5):
        by, bx = rng.uniform(-0.1, 1.1) * h, rng.uniform(-0.1, 1.1) * w
        sig = rng.uniform(0.12, 0.3) * size
        img += rng.uniform(0.2, 0.6) * np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * sig * sig))
    img = 0.6 + 0.8 * (img - img.min()) / (img.max() - img.min())
    main = img / img.mean() * cfg.background_level
    # neuropil: finer random field, fluctuating faster
    field_ = ndimage.gaussian_filter(rng.standard_normal((h, w)), max(12.0, 0.08 * size), mode="wrap")
    field_ = (field_ - field_.min()) / max(field_.max() - field_.min(), 1e-12)
    neuropil = field_ * cfg.neuropil_fraction * cfg.background_level
    fr = cfg.frame_rate
    g_main = 1.0 + cfg.background_fluctuation * _smooth_noise(rng, cfg.n_frames, cfg.background_timescale_s * fr)
    g_np = 1.0 + 3.0 * cfg.background_fluctuation * _smooth_noise(rng, cfg.n_frames, _NEUROPIL_TIMESCALE_S * fr)
    spatial = np.stack([main, neuropil]).astype(np.float32)
    temporal = np.maximum(np.stack([g_main, g_np]), 0.0).astype(np.float32)
    return spatial, temporal


def _vessels(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Transmission image (H, W): dark, curvy vessels entering from the frame edges."""
    h, w = cfg.height, cfg.width
    trans = np.ones((h, w), dtype=np.float64)
    shift_bits = 4
    for _ in range(cfg.n_vessels):
        side = rng.integers(4)
        if side == 0:
            p, heading = np.array([0.0, rng.uniform(0, w - 1)]), math.pi / 2
        elif side == 1:
            p, heading = np.array([h - 1.0, rng.uniform(0, w - 1)]), -math.pi / 2
        elif side == 2:
            p, heading = np.array([rng.uniform(0, h - 1), 0.0]), 0.0
        else:
            p, heading = np.array([rng.uniform(0, h - 1), w - 1.0]), math.pi
        heading += rng.uniform(-0.7, 0.7)
        turn = 0.0
        pts = [p.copy()]
        for _ in range(4 * (h + w)):
            turn = float(np.clip(0.97 * turn + rng.normal(0, 0.004), -0.03, 0.03))
            heading += turn
            p = p + np.array([math.sin(heading), math.cos(heading)])
            pts.append(p.copy())
            if not (-2 <= p[0] <= h + 1 and -2 <= p[1] <= w + 1):
                break
        width_px = rng.uniform(2.0, 5.0)
        mask = np.zeros((h, w), dtype=np.float32)
        xy = np.round(np.array(pts)[:, ::-1] * (1 << shift_bits)).astype(np.int32)
        cv2.polylines(mask, [xy], False, 1.0, thickness=max(1, int(round(width_px))),
                      lineType=cv2.LINE_AA, shift=shift_bits)
        mask = ndimage.gaussian_filter(mask.astype(float), 0.8)
        mask /= max(mask.max(), 1e-12)
        trans *= 1.0 - rng.uniform(*cfg.vessel_depth) * mask
    return trans.astype(np.float32)


def _bleach(cfg: SyntheticConfig) -> np.ndarray:
    if cfg.bleach_fraction == 0:
        return np.ones(cfg.n_frames, dtype=np.float32)
    rate = -math.log(1.0 - cfg.bleach_fraction) / cfg.duration_s
    return np.exp(-rate * np.arange(cfg.n_frames) / cfg.frame_rate).astype(np.float32)


# --------------------------------------------------------------------------- motion
def _rigid_shifts(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    t, fr, m = cfg.n_frames, cfg.frame_rate, cfg.max_shift_px
    if cfg.motion == "none" or m == 0:
        return np.zeros((t, 2), dtype=np.float32)
    raw = np.stack([0.4 * m * _smooth_noise(rng, t, _MOTION_TIMESCALE_S * fr) for _ in range(2)], axis=1)
    n_jumps = rng.poisson(cfg.jump_rate_hz * cfg.duration_s)
    frames = np.arange(t)
    for _ in range(n_jumps):
        t0 = rng.integers(t)
        mag, ang, tau = rng.uniform(0.5, 1.0) * m, rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 2.0) * fr
        decay = np.where(frames >= t0, np.exp(-(frames - t0) / tau), 0.0)
        raw += decay[:, None] * mag * np.array([math.sin(ang), math.cos(ang)])
    return (m * np.tanh(raw / m)).astype(np.float32)


def _grid_nodes(n_px: int) -> np.ndarray:
    n_nodes = max(3, int(round(n_px / _NONRIGID_NODE_SPACING_PX)) + 1)
    return np.linspace(0.0, n_px - 1.0, n_nodes)


def _nonrigid_field(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    if cfg.motion != "nonrigid":
        return None, np.zeros(0), np.zeros(0)
    gy, gx = _grid_nodes(cfg.height), _grid_nodes(cfg.width)
    a, t = cfg.nonrigid_amplitude_px, cfg.n_frames
    disp = np.zeros((t, 2, gy.size, gx.size), dtype=np.float32)
    if a > 0:
        for c in range(2):
            for i in range(gy.size):
                for j in range(gx.size):
                    z = _smooth_noise(rng, t, _NONRIGID_TIMESCALE_S * cfg.frame_rate)
                    disp[:, c, i, j] = a * np.tanh(0.6 * z)
    return disp, gy, gx


def _interp_weights(nodes: np.ndarray, n_px: int) -> np.ndarray:
    """(n_px, n_nodes) smooth (raised-cosine) interpolation weights: non-negative, rows sum to 1."""
    pos = np.arange(n_px, dtype=float)
    s = np.interp(pos, nodes, np.arange(nodes.size))
    j = np.minimum(np.floor(s).astype(int), nodes.size - 2)
    f = s - j
    wgt = (1.0 - np.cos(np.pi * f)) / 2.0
    out = np.zeros((n_px, nodes.size))
    out[np.arange(n_px), j] = 1.0 - wgt
    out[np.arange(n_px), j + 1] = wgt
    return out


def displacement_at(truth: GroundTruth, t: int) -> np.ndarray:
    """Full-resolution content displacement of frame ``t``.

    Parameters
    ----------
    truth : GroundTruth
    t : int
        Frame index, ``0 <= t < T``.

    Returns
    -------
    ndarray, shape (2, H, W), float32
        (dy, dx) per pixel: the rigid shift plus the interpolated non-rigid field.
        ``observed(y, x) = scene(y - dy(y, x), x - dx(y, x))``.
    """
    t = _check_frame(truth, t)
    h, w = truth.frame_shape
    out = np.empty((2, h, w), dtype=np.float32)
    out[0] = truth.shifts[t, 0]
    out[1] = truth.shifts[t, 1]
    if truth.displacement is not None:
        wy, wx = _cached_weights(truth)
        for c in range(2):
            out[c] += (wy @ truth.displacement[t, c].astype(np.float64) @ wx.T).astype(np.float32)
    return out


# --------------------------------------------------------------------------- truth
def simulate_ground_truth(config: SyntheticConfig) -> GroundTruth:
    """Draw every component of a synthetic recording (no movie is rendered).

    Parameters
    ----------
    config : SyntheticConfig

    Returns
    -------
    GroundTruth
        Render frames from it with :func:`render_frames`.
    """
    if not isinstance(config, SyntheticConfig):
        raise SyntheticConfigError(f"config must be a SyntheticConfig, got {type(config).__name__}")
    cfg = config
    rng_n = _rng(cfg.seed, _TAG_NEURONS)
    centers, radii = _place_neurons(cfg, rng_n)
    k = cfg.n_neurons
    aspects = rng_n.uniform(1.0, 1.35, size=k)
    angles = rng_n.uniform(0, math.pi, size=k)
    lo, hi = cfg.neuron_brightness
    brightness = np.exp(rng_n.uniform(math.log(lo), math.log(hi), size=k))
    footprints = np.zeros((k, cfg.height, cfg.width), dtype=np.float32)
    for i in range(k):
        footprints[i] = _footprint(cfg, centers[i], radii[i], aspects[i], angles[i])

    g, peak = _ar_coefficients(cfg)
    spikes, traces = _simulate_activity(cfg, _rng(cfg.seed, _TAG_SPIKES), brightness, g, peak)
    bg_spatial, bg_temporal = _background(cfg, _rng(cfg.seed, _TAG_BACKGROUND))
    vessels = _vessels(cfg, _rng(cfg.seed, _TAG_VESSELS))
    bleach = _bleach(cfg)
    shifts = _rigid_shifts(cfg, _rng(cfg.seed, _TAG_MOTION))
    disp, grid_y, grid_x = _nonrigid_field(cfg, _rng(cfg.seed, _TAG_NONRIGID))

    mean_scene = np.tensordot(bg_temporal.mean(axis=1), bg_spatial, axes=1).astype(np.float64)
    if k:
        mean_scene += np.tensordot(traces.mean(axis=1), footprints, axes=1)
    mean_scene *= vessels * float(bleach.mean())
    noise_std = np.sqrt(mean_scene / cfg.gain + cfg.read_noise ** 2 + 1.0 / 12.0).astype(np.float32)

    pnr = np.zeros(k, dtype=np.float32)
    snr = np.zeros(k, dtype=np.float32)
    for i in range(k):
        py, px = np.unravel_index(int(np.argmax(footprints[i])), footprints[i].shape)
        scale = float(vessels[py, px]) / float(noise_std[py, px])
        observed = traces[i] * bleach * scale
        pnr[i] = observed.max() if observed.size else 0.0
        hit = spikes[i] > 0
        if hit.any():
            snr[i] = float(np.mean(spikes[i][hit] * peak * bleach[hit])) * scale

    truth = GroundTruth(
        footprints=footprints, centers=centers, traces=traces, spikes=spikes, shifts=shifts,
        displacement=disp, background_spatial=bg_spatial, background_temporal=bg_temporal,
        bleach=bleach, vessels=vessels, noise_std=noise_std, pnr=pnr, snr=snr,
        pnr_cnmfe=np.zeros(k, dtype=np.float32),
        frame_rate=float(cfg.frame_rate), config=cfg, ar_coefficients=g,
        radii=radii.astype(np.float32), brightness=brightness.astype(np.float32),
        grid_y=grid_y, grid_x=grid_x,
    )
    truth.pnr_cnmfe[:] = cnmfe_pnr(truth)
    return truth


def cnmfe_filter_kernel(gSig: tuple[int, int] = (3, 3), gSiz: tuple[int, int] | None = None) -> np.ndarray:
    """The mean-subtracted Gaussian kernel CNMF-E filters frames with before seeding.

    Gaussian of sigma ``gSig`` on a ``gSiz`` window (default ``4 * gSig + 1``), kept
    inside the ellipse where it exceeds its value at the window's edge midpoint, and
    made zero-mean there (``center_psf``). Shape ``gSiz``, float64.
    """
    if gSiz is None:
        gSiz = (4 * gSig[0] + 1, 4 * gSig[1] + 1)
    if min(gSig) <= 0 or min(gSiz) < 3:
        raise SyntheticConfigError(f"gSig = {gSig}, gSiz = {gSiz}: give gSig > 0 and gSiz >= 3")
    y = np.arange(gSiz[0]) - (gSiz[0] - 1) / 2
    x = np.arange(gSiz[1]) - (gSiz[1] - 1) / 2
    g = np.exp(-y[:, None] ** 2 / (2 * gSig[0] ** 2) - x[None, :] ** 2 / (2 * gSig[1] ** 2))
    inside = g >= min(g[0, gSiz[1] // 2], g[gSiz[0] // 2, 0])
    k = np.where(inside, g, 0.0)
    k[inside] -= k[inside].mean()
    return k


def cnmfe_pnr(truth: GroundTruth, *, gSig: tuple[int, int] = (3, 3),
              gSiz: tuple[int, int] | None = None) -> np.ndarray:
    """Peak-to-noise ratio of each neuron as CNMF-E's PNR image sees it (what ``min_pnr`` thresholds).

    The neuron's observed contribution (footprint x trace x vessel x bleach) and the
    pixel noise are both filtered with :func:`cnmfe_filter_kernel`; the PNR is the
    filtered peak over the filtered noise sd (white noise: ``noise_std * ||kernel||``),
    at the pixel where the filtered footprint peaks. Shape (K,), float32.
    """
    k = cnmfe_filter_kernel(gSig, gSiz)
    norm = float(np.sqrt(np.sum(k * k)))
    out = np.zeros(truth.n_neurons, dtype=np.float32)
    obs_peak = (truth.traces * truth.bleach[None, :]).max(axis=1) if truth.n_frames else np.zeros(truth.n_neurons)
    for i in range(truth.n_neurons):
        a = truth.footprints[i].astype(np.float64) * truth.vessels
        fa = cv2.filter2D(a, -1, k, borderType=cv2.BORDER_REFLECT)
        py, px = np.unravel_index(int(np.argmax(fa)), fa.shape)
        out[i] = obs_peak[i] * fa[py, px] / (truth.noise_std[py, px] * norm)
    return out


def observed_traces(truth: GroundTruth) -> np.ndarray:
    """Traces as they appear in the movie at each footprint peak (x vessel x bleach), (K, T) float32."""
    out = np.empty_like(truth.traces)
    for i in range(truth.n_neurons):
        py, px = np.unravel_index(int(np.argmax(truth.footprints[i])), truth.frame_shape)
        out[i] = truth.traces[i] * truth.bleach * truth.vessels[py, px]
    return out


# --------------------------------------------------------------------------- rendering
def _check_frame(truth: GroundTruth, t: int) -> int:
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
        raise SyntheticConfigError(f"frame index must be a whole number, got {t!r}")
    if not 0 <= t < truth.n_frames:
        raise SyntheticConfigError(f"frame index {t} outside the recording [0, {truth.n_frames})")
    return int(t)


def _check_range(truth: GroundTruth, start: int, stop: int) -> tuple[int, int]:
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise SyntheticConfigError(f"{name} must be a whole number, got {v!r}")
    if not 0 <= start <= stop <= truth.n_frames:
        raise SyntheticConfigError(
            f"frame range [{start}, {stop}) is not within [0, {truth.n_frames}]: "
            f"give 0 <= start <= stop <= n_frames")
    return int(start), int(stop)


def _cached_weights(truth: GroundTruth) -> tuple[np.ndarray, np.ndarray]:
    if "weights" not in truth._cache:
        h, w = truth.frame_shape
        truth._cache["weights"] = (_interp_weights(truth.grid_y, h), _interp_weights(truth.grid_x, w))
    return truth._cache["weights"]


def _cached_footprints(truth: GroundTruth) -> sparse.csr_matrix:
    if "A" not in truth._cache:
        k = truth.n_neurons
        truth._cache["A"] = sparse.csr_matrix(truth.footprints.reshape(k, -1).T)
    return truth._cache["A"]


def _cached_grid(truth: GroundTruth) -> tuple[np.ndarray, np.ndarray]:
    if "grid" not in truth._cache:
        h, w = truth.frame_shape
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        truth._cache["grid"] = (gy, gx)
    return truth._cache["grid"]


def _unwarped_scene(truth: GroundTruth, t: int) -> np.ndarray:
    h, w = truth.frame_shape
    scene = np.zeros((h, w), dtype=np.float32)
    for b in range(truth.background_spatial.shape[0]):
        scene += truth.background_spatial[b] * truth.background_temporal[b, t]
    if truth.n_neurons:
        c = np.ascontiguousarray(truth.traces[:, t])
        scene += (_cached_footprints(truth) @ c).reshape(h, w).astype(np.float32)
    scene *= truth.vessels
    scene *= truth.bleach[t]
    return scene


def _warp(truth: GroundTruth, scene: np.ndarray, t: int) -> np.ndarray:
    if truth.config.motion == "none":
        return scene
    if truth.displacement is None:
        dy, dx = (float(v) for v in truth.shifts[t])
        if dy == 0 and dx == 0:
            return scene
        # forward translation: dst(x, y) = src(x - dx, y - dy)
        m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        return cv2.warpAffine(scene, m, (scene.shape[1], scene.shape[0]), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REFLECT_101)
    gy, gx = _cached_grid(truth)
    d = displacement_at(truth, t)
    return cv2.remap(scene, gx - d[1], gy - d[0], interpolation=cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT_101)


def render_scene(truth: GroundTruth, t: int, *, warped: bool = True) -> np.ndarray:
    """The noise-free scene of frame ``t`` in counts, shape (H, W), float32.

    ``warped=False`` gives the scene before motion (the motion-free reference).
    """
    t = _check_frame(truth, t)
    scene = _unwarped_scene(truth, t)
    return _warp(truth, scene, t) if warped else scene


def _add_noise(truth: GroundTruth, scene: np.ndarray, t: int) -> np.ndarray:
    cfg = truth.config
    rng = _rng(cfg.seed, _TAG_NOISE, t)
    mean = np.maximum(scene, 0.0).astype(np.float32, copy=False)
    if cfg.noise_model == "poisson":
        counts = rng.poisson(mean * cfg.gain).astype(np.float32)
        counts *= np.float32(1.0 / cfg.gain)
        if cfg.read_noise > 0:
            counts += np.float32(cfg.read_noise) * rng.standard_normal(scene.shape, dtype=np.float32)
    else:  # one Gaussian draw with the Poisson + read-noise variance
        sd = np.sqrt(mean * np.float32(1.0 / cfg.gain) + np.float32(cfg.read_noise ** 2))
        counts = mean + sd * rng.standard_normal(scene.shape, dtype=np.float32)
    np.rint(counts, out=counts)
    np.clip(counts, 0, 255, out=counts)
    return counts.astype(np.uint8)


def render_frames(truth: GroundTruth, start: int, stop: int) -> np.ndarray:
    """Render frames ``[start, stop)`` of the recording.

    Each frame depends only on the truth and its index, so blocks rendered
    separately concatenate to exactly the one-shot movie.

    Parameters
    ----------
    truth : GroundTruth
    start, stop : int
        Half-open frame range, ``0 <= start <= stop <= T``.

    Returns
    -------
    ndarray, shape (stop - start, H, W), uint8
    """
    start, stop = _check_range(truth, start, stop)
    h, w = truth.frame_shape
    out = np.empty((stop - start, h, w), dtype=np.uint8)
    for i, t in enumerate(range(start, stop)):
        out[i] = _add_noise(truth, _warp(truth, _unwarped_scene(truth, t), t), t)
    return out


def iter_rendered_blocks(truth: GroundTruth, block_frames: int = 200) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_frame, frames)`` blocks covering the whole recording (streaming)."""
    if isinstance(block_frames, bool) or not isinstance(block_frames, (int, np.integer)) or block_frames < 1:
        raise SyntheticConfigError(f"block_frames = {block_frames!r}: give a whole number >= 1")
    for s in range(0, truth.n_frames, block_frames):
        yield s, render_frames(truth, s, min(s + block_frames, truth.n_frames))


class SyntheticFrames:
    """A lazily rendered movie: an array-like ``(T, H, W)`` uint8 sliceable along frames.

    Satisfies the :class:`ace_neuro.movie.FrameArray` protocol, so stages can stream
    a synthetic recording of any length without it ever being written or held whole.
    """

    def __init__(self, truth: GroundTruth):
        self.truth = truth
        h, w = truth.frame_shape
        self.shape = (truth.n_frames, h, w)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            t = int(key) + (self.shape[0] if key < 0 else 0)
            frame = render_frames(self.truth, _check_frame(self.truth, t), t + 1)[0]
            return frame[rest] if rest else frame
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step == 1:
                block = render_frames(self.truth, start, max(start, stop))
            else:
                idx = range(start, stop, step)
                block = np.stack([render_frames(self.truth, t, t + 1)[0] for t in idx]) if len(idx) \
                    else np.empty((0,) + self.shape[1:], np.uint8)
            return block[(slice(None),) + rest] if rest else block
        raise SyntheticConfigError(f"SyntheticFrames supports an int or a slice on the frame axis, got {key!r}")


def simulate_movie(config: SyntheticConfig) -> tuple[np.ndarray, GroundTruth]:
    """Simulate a small recording in memory.

    Returns
    -------
    movie : ndarray, shape (T, H, W), uint8
    truth : GroundTruth
    """
    truth = simulate_ground_truth(config)
    return render_frames(truth, 0, truth.n_frames), truth


# --------------------------------------------------------------------------- persistence
_ARRAY_FIELDS = ("footprints", "centers", "traces", "spikes", "shifts", "background_spatial",
                 "background_temporal", "bleach", "vessels", "noise_std", "pnr", "snr", "pnr_cnmfe",
                 "ar_coefficients", "radii", "brightness", "grid_y", "grid_x")
_FORMAT_VERSION = 1


def save_ground_truth(truth: GroundTruth, path: str | Path) -> Path:
    """Write the truth to a compressed ``.npz`` (no pickle); the config is stored as JSON inside.

    The file is written beside its destination and renamed, so it is never half written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise SyntheticConfigError(f"ground-truth path {path}: give a file name ending in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.asarray(getattr(truth, name)) for name in _ARRAY_FIELDS}
    if truth.displacement is not None:
        arrays["displacement"] = truth.displacement
    meta = {"format_version": _FORMAT_VERSION, "frame_rate": truth.frame_rate,
            "config": truth.config.to_dict()}
    arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def load_ground_truth(path: str | Path) -> GroundTruth:
    """Read a truth written by :func:`save_ground_truth`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        if "meta_json" not in z.files:
            raise SyntheticConfigError(f"{path} is not a ground-truth file (no meta_json entry)")
        meta = json.loads(str(z["meta_json"]))
        if meta.get("format_version") != _FORMAT_VERSION:
            raise SyntheticConfigError(f"{path}: unsupported ground-truth format {meta.get('format_version')!r}")
        arrays = {name: z[name] for name in _ARRAY_FIELDS}
        disp = z["displacement"] if "displacement" in z.files else None
    return GroundTruth(displacement=disp, frame_rate=float(meta["frame_rate"]),
                       config=SyntheticConfig.from_dict(meta["config"]), **arrays)


def crop_ground_truth(truth: GroundTruth, rows: tuple[int, int], cols: tuple[int, int], *,
                      min_inside: float = 0.5) -> GroundTruth:
    """The ground truth of a cropped recording, for scoring what was found in the crop.

    Spatial maps are cut to rows ``[r0, r1)`` and columns ``[c0, c1)``; neurons keep their
    place in the crop if at least ``min_inside`` of their footprint's mass lies inside it.
    Motion fields are dropped (``displacement=None``): a cropped truth scores results, it
    does not render movies.
    """
    r0, r1 = rows
    c0, c1 = cols
    H, W = truth.footprints.shape[1:]
    if not (0 <= r0 < r1 <= H and 0 <= c0 < c1 <= W):
        raise SyntheticConfigError(f"crop rows {rows}, cols {cols} do not fit a {H} x {W} truth")
    fp = truth.footprints[:, r0:r1, c0:c1]
    total = truth.footprints.reshape(len(fp), -1).sum(axis=1)
    inside = fp.reshape(len(fp), -1).sum(axis=1) / np.maximum(total, 1e-12)
    keep = inside >= min_inside
    return dataclasses.replace(
        truth, footprints=np.ascontiguousarray(fp[keep]),
        centers=truth.centers[keep] - np.array([r0, c0], dtype=float),
        traces=truth.traces[keep], spikes=truth.spikes[keep], displacement=None,
        background_spatial=truth.background_spatial[..., r0:r1, c0:c1],
        vessels=truth.vessels[r0:r1, c0:c1], noise_std=truth.noise_std[r0:r1, c0:c1],
        pnr=truth.pnr[keep], snr=truth.snr[keep], pnr_cnmfe=truth.pnr_cnmfe[keep],
        ar_coefficients=truth.ar_coefficients[keep] if truth.ar_coefficients.ndim and len(
            truth.ar_coefficients) == len(keep) else truth.ar_coefficients,
        radii=truth.radii[keep], brightness=truth.brightness[keep])


def select_frames(truth: GroundTruth, frames) -> GroundTruth:
    """The ground truth of the frames a recording actually delivered (e.g. without dropped frames).

    Time-resolved arrays keep only ``frames``; for scoring, not for rendering.
    """
    idx = np.asarray(frames, dtype=np.int64)
    T = truth.traces.shape[1]
    if idx.size and (idx.min() < 0 or idx.max() >= T):
        raise SyntheticConfigError(f"frames must lie in [0, {T}), got {idx.min()}..{idx.max()}")
    return dataclasses.replace(
        truth, traces=truth.traces[:, idx], spikes=truth.spikes[:, idx], shifts=truth.shifts[idx],
        displacement=None if truth.displacement is None else truth.displacement[idx],
        background_temporal=truth.background_temporal[..., idx], bleach=truth.bleach[idx])
