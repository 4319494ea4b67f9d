"""Summary images of the spatially filtered movie: local correlation and peak-to-noise ratio.

CNMF-E (Zhou et al. 2018) looks for neurons in a movie filtered with a kernel of
the neuron's size (``gSig``) whose mean is removed (``center_psf``), which
suppresses the smooth 1-photon background. Two images of that filtered movie
``F`` rank candidate seed pixels:

* peak-to-noise ratio ``PNR = max_t (F - mean_t F) / noise``, the noise being the
  standard deviation of ``F`` from the median absolute second difference in
  time (robust to the rises and decays of bright neurons), averaged over blocks;
* local correlation ``Cn``: the mean temporal correlation of a pixel with its 8
  neighbours, computed after values below ``thresh_init * noise`` are set to 0
  (so only transients, not noise, correlate).

Both are computed in two streaming passes over frame blocks; memory holds a few
images per statistic, never the movie.

The filter is the Gaussian of width ``gSig`` minus the box average over the same
window (CaImAn's ``background_filter='box'``): a zero-mean kernel that is
separable, hence about 8x faster than CaImAn's default (a zero-mean Gaussian
cut to a disk). With ``center_psf=False`` it is the Gaussian alone.

PNR units. The box kernel passes a neuron's signal relative to white noise
about 1.3x better than the disk kernel, so the same ``min_pnr`` would select
dimmer neurons than in CaImAn. The PNR image is therefore divided by that
ratio computed for a Gaussian neuron of width ``gSig`` (:func:`pnr_calibration`):
``min_pnr`` keeps the meaning it has in the lab's CaImAn-era CSV files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import cv2
import numpy as np
import pandas as pd

from .errors import CnmfeParameterError
from .filters import box_kernel, disk_kernel, kernel_size, spatial_filter
from .seed_sizes import measure_seed_sizes
from .stream import FrameSource, validate_frames

__all__ = [
    "SummaryImages", "FilteredStats", "kernel_size", "spatial_filter", "summarize_filtered",
    "box_kernel", "disk_kernel", "pnr_calibration", "block_noise_sq", "median_last",
    "find_seeds", "seed_count_table", "cnmfe_summary_images",
    "DEFAULT_MIN_CORR_GRID", "DEFAULT_MIN_PNR_GRID",
]

DEFAULT_MIN_CORR_GRID = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
DEFAULT_MIN_PNR_GRID = (4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0)
#: values of the filtered movie below thresh_init * noise are zeroed for the correlation image
THRESH_INIT = 2.0


def pnr_calibration(gSig: Sequence[float], *, center_psf: bool = True) -> float:
    """PNR of a Gaussian neuron of width ``gSig`` with our kernel over that with CaImAn's disk kernel.

    Dividing the PNR image by this factor expresses it in the units ``min_pnr``
    had in CaImAn (1.0 when ``center_psf`` is False: both then use the Gaussian).
    """
    if not center_psf:
        return 1.0
    sy, sx = (float(g) for g in gSig)
    ry, rx = int(np.ceil(5 * sy)), int(np.ceil(5 * sx))
    y, x = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    neuron = np.exp(-(y ** 2) / (2 * sy ** 2) - (x ** 2) / (2 * sx ** 2)).astype(np.float32)

    def gain(k: np.ndarray) -> float:
        f = cv2.filter2D(neuron, -1, k.astype(np.float32), borderType=cv2.BORDER_CONSTANT)
        return float(f.max()) / float(np.sqrt((k * k).sum()))

    return gain(box_kernel(gSig)) / gain(disk_kernel(gSig))


@dataclass(frozen=True)
class FilteredStats:
    """Per-pixel statistics of a filtered movie (arrays of shape (h, w)).

    ``mean``, ``noise`` (robust temporal sd, see :func:`block_noise_sq`), ``peak``
    (max of ``F - mean``), ``norm`` (sqrt of sum over t of ``(F - mean)**2``),
    ``corr`` (thresholded local correlation), ``pnr`` (peak / noise, divided by
    ``pnr_scale``), ``raw_sum`` (sum over t of the unfiltered input), ``n_frames``.
    """

    mean: np.ndarray
    noise: np.ndarray
    peak: np.ndarray
    norm: np.ndarray
    corr: np.ndarray
    pnr: np.ndarray
    raw_sum: np.ndarray
    n_frames: int
    pnr_scale: float = 1.0


def median_last(a: np.ndarray) -> np.ndarray:
    """Median along the last axis via one partition (upper median for even lengths; fast)."""
    n = a.shape[-1]
    return np.partition(a, n // 2, axis=-1)[..., n // 2]


def block_noise_sq(F: np.ndarray) -> np.ndarray:
    """Robust per-pixel noise variance of a (B, h, w) block from second differences in time.

    ``sigma = 1.4826 * MAD(d2) / sqrt(6)`` with ``d2[t] = F[t] - 2 F[t-1] + F[t-2]``.
    The median ignores the few samples around a calcium rise, and second
    differences cancel the slow decays (which bias first differences of bright,
    active neurons), so the estimate stays the white-noise level. Returns
    ``sigma**2``, shape (h, w).
    """
    d = F[2:] - 2.0 * F[1:-1] + F[:-2]
    d = np.ascontiguousarray(d.reshape(d.shape[0], -1).T)  # time last: partitions run on contiguous rows
    med = median_last(d)
    d -= med[:, None]
    np.abs(d, out=d)
    mad = median_last(d)
    return ((1.4826 * mad) ** 2 / 6.0).reshape(F.shape[1:])


_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _shifted_pair(Z: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Views (a, b) of Z with b = Z shifted by (dy, dx): a[y, x] pairs with Z[y+dy, x+dx]."""
    h, w = Z.shape[-2:]
    if dx >= 0:
        return Z[..., :h - dy, :w - dx], Z[..., dy:, dx:]
    return Z[..., :h - dy, -dx:], Z[..., dy:, :w + dx]


def summarize_filtered(blocks: Iterable[tuple[int, np.ndarray]], gSig: Sequence[float], *,
                       center_psf: bool = True, thresh_init: float = THRESH_INIT,
                       pnr_scale: float = 1.0, noise: np.ndarray | None = None,
                       known_mean: tuple[np.ndarray, int] | None = None) -> FilteredStats:
    """Two streaming passes: (1) mean, noise, raw sum; (2) peak, norm and local correlation.

    Parameters
    ----------
    blocks : re-iterable of (t0, block)
        Each iteration is a pass yielding (B, h, w) float32 blocks (e.g. a
        :class:`~ace_neuro.stages.cnmfe.stream.FrameSource`).
    gSig : (float, float)
        Filter width in pixels (at the resolution of the blocks).
    center_psf : bool
        Zero-mean filter (see :func:`spatial_filter`).
    thresh_init : float
        Values below ``thresh_init * noise`` are zeroed for the correlation image.
    pnr_scale : float
        The PNR image is divided by this (compensates for noise reduction by
        temporal/spatial averaging, so PNR is comparable with ``min_pnr``).
    noise : ndarray, optional
        Known noise image (skips its estimation, e.g. for residual movies).
    known_mean : (ndarray, int), optional
        Temporal mean of the unfiltered blocks and their number of frames; with
        ``noise`` given, pass 1 is skipped.
    """
    if known_mean is not None and noise is not None:
        raw_mean, T = known_mean
        raw_mean = np.asarray(raw_mean, dtype=np.float32)
        mean = spatial_filter(raw_mean[None], gSig, center_psf=center_psf)[0].astype(np.float64)
        return _second_pass(blocks, gSig, center_psf, thresh_init, pnr_scale, mean,
                            np.asarray(noise, dtype=np.float64), raw_mean.astype(np.float64) * T, int(T))
    # pass 1 ---------------------------------------------------------------------------
    s1 = None
    s2 = None
    raw_sum = None
    nsq = None
    n_noise = 0
    T = 0
    for _, block in blocks:
        F = spatial_filter(block, gSig, center_psf=center_psf)
        if s1 is None:
            shape = F.shape[1:]
            s1 = np.zeros(shape)
            s2 = np.zeros(shape)
            raw_sum = np.zeros(shape)
            nsq = np.zeros(shape)
        s1 += F.sum(axis=0, dtype=np.float64)
        s2 += np.einsum("tij,tij->ij", F, F, dtype=np.float64)
        raw_sum += block.sum(axis=0, dtype=np.float64)
        if noise is None and F.shape[0] >= 8:
            nsq += block_noise_sq(F) * (F.shape[0] - 1)
            n_noise += F.shape[0] - 1
        T += F.shape[0]
    if s1 is None or T < 2:
        raise CnmfeParameterError("the movie yielded fewer than 2 frames; nothing to summarise")
    mean = s1 / T
    var = np.maximum(s2 / T - mean ** 2, 0.0)
    if noise is None:
        noise = np.sqrt(nsq / n_noise) if n_noise else np.sqrt(var)
    noise = np.maximum(np.asarray(noise, dtype=np.float64), 1e-6 * (np.sqrt(var).max() + 1e-12))
    return _second_pass(blocks, gSig, center_psf, thresh_init, pnr_scale, mean, noise, raw_sum, T)


def _second_pass(blocks, gSig, center_psf, thresh_init, pnr_scale, mean, noise, raw_sum, T) -> FilteredStats:
    """Peak, norm and thresholded local correlation of the filtered movie."""
    noise = np.maximum(noise, 1e-12)
    thr = (thresh_init * noise).astype(np.float32)
    mean32 = mean.astype(np.float32)
    peak = np.full(mean.shape, -np.inf)
    g2 = np.zeros(mean.shape)
    z1 = np.zeros(mean.shape)
    z2 = np.zeros(mean.shape)
    zx = [np.zeros(mean.shape) for _ in _NEIGHBOURS]
    for _, block in blocks:
        G = spatial_filter(block, gSig, center_psf=center_psf)
        G -= mean32
        np.maximum(peak, G.max(axis=0), out=peak)
        g2 += np.einsum("tij,tij->ij", G, G, dtype=np.float64)
        G[G < thr] = 0.0
        z1 += G.sum(axis=0, dtype=np.float64)
        z2 += np.einsum("tij,tij->ij", G, G, dtype=np.float64)
        for acc, (dy, dx) in zip(zx, _NEIGHBOURS):
            a, b = _shifted_pair(G, dy, dx)
            av, _ = _shifted_pair(acc, dy, dx)
            av += np.einsum("tij,tij->ij", a, b, dtype=np.float64)
    corr = _local_correlation(z1, z2, zx, T)
    norm = np.sqrt(g2)
    pnr = np.maximum(peak, 0.0) / noise / pnr_scale
    return FilteredStats(mean=mean.astype(np.float32), noise=noise.astype(np.float32),
                         peak=peak.astype(np.float32), norm=norm.astype(np.float32),
                         corr=corr.astype(np.float32), pnr=pnr.astype(np.float32),
                         raw_sum=raw_sum, n_frames=T, pnr_scale=float(pnr_scale))


def _local_correlation(z1, z2, zx, T) -> np.ndarray:
    """Mean correlation of each pixel with its 8 neighbours from accumulated sums."""
    var = np.maximum(z2 - z1 ** 2 / T, 0.0)
    total = np.zeros(z1.shape)
    count = np.zeros(z1.shape)
    for acc, (dy, dx) in zip(zx, _NEIGHBOURS):
        a1, b1 = _shifted_pair(z1, dy, dx)
        av, bv = _shifted_pair(var, dy, dx)
        cross, _ = _shifted_pair(acc, dy, dx)
        den = np.sqrt(av * bv)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, (cross - a1 * b1 / T) / np.where(den > 0, den, 1.0), 0.0)
        ta, tb = _shifted_pair(total, dy, dx)
        ca, cb = _shifted_pair(count, dy, dx)
        ta += r
        tb += r
        ca += 1
        cb += 1
    cn = total / np.maximum(count, 1)
    cn[~np.isfinite(cn)] = 0.0
    return np.clip(cn, 0.0, 1.0)


def find_seeds(corr: np.ndarray, pnr: np.ndarray, *, min_corr: float, min_pnr: float,
               gSiz: Sequence[float], border_pix: int = 0,
               exclude: np.ndarray | None = None) -> np.ndarray:
    """Candidate neuron centres: local maxima of ``corr * pnr`` above both thresholds.

    As in CNMF-E, the product is median-filtered (3x3, so that isolated noisy
    pixels do not score) and local maxima within a window of ``gSiz / 4`` are
    kept. Pixels below ``min_corr`` or ``min_pnr`` are zeroed after the median
    filter (CaImAn zeroes them before, which also removes neurons whose
    above-threshold island is smaller than half the 3x3 window, i.e. neurons
    just above threshold).

    Parameters
    ----------
    corr, pnr : ndarray, shape (h, w)
    min_corr, min_pnr : float
    gSiz : (int, int)
        Neuron diameter in pixels (same resolution as the images).
    border_pix : int
        Seeds closer than this to an edge are ignored.
    exclude : bool ndarray, shape (h, w), optional
        Pixels that may not be seeds (e.g. inside already-found neurons).

    Returns
    -------
    ndarray, shape (N, 3)
        ``(y, x, corr * pnr)`` rows sorted by decreasing score.
    """
    v = cv2.medianBlur((corr * pnr).astype(np.float32), 3)
    v[(corr < min_corr) | (pnr < min_pnr)] = 0.0
    if border_pix > 0:
        v[:border_pix] = 0
        v[-border_pix:] = 0
        v[:, :border_pix] = 0
        v[:, -border_pix:] = 0
    if exclude is not None:
        v[exclude] = 0
    if not np.any(v > 0):
        return np.zeros((0, 3))
    # break ties deterministically so that flat maxima give one seed
    v = v + (np.arange(v.size, dtype=np.float32).reshape(v.shape) / v.size) * (1e-6 * float(v.max()))
    v[v <= 1e-6 * float(v.max()) * 1.0000001] = 0.0
    ks = max(3, int(round(float(np.mean(gSiz)) / 4.0)))
    vmax = cv2.dilate(v, np.ones((ks, ks), np.uint8))
    ys, xs = np.nonzero((v == vmax) & (v > 0))
    score = v[ys, xs]
    order = np.argsort(-score, kind="stable")
    return np.column_stack([ys[order], xs[order], score[order]]).astype(float)


def seed_count_table(corr: np.ndarray, pnr: np.ndarray, *, gSiz: Sequence[float],
                     min_corr_grid: Sequence[float] = DEFAULT_MIN_CORR_GRID,
                     min_pnr_grid: Sequence[float] = DEFAULT_MIN_PNR_GRID,
                     border_pix: int = 0) -> pd.DataFrame:
    """Number of seeds for every ``(min_corr, min_pnr)`` pair (long format, one row each)."""
    rows = []
    for mc in min_corr_grid:
        for mp in min_pnr_grid:
            n = len(find_seeds(corr, pnr, min_corr=float(mc), min_pnr=float(mp), gSiz=gSiz,
                               border_pix=border_pix))
            rows.append({"min_corr": float(mc), "min_pnr": float(mp), "n_seeds": n})
    return pd.DataFrame(rows, columns=["min_corr", "min_pnr", "n_seeds"])


@dataclass(frozen=True)
class SummaryImages:
    """Summary images for tuning CNMF-E without a GUI.

    Attributes
    ----------
    corr, pnr : ndarray, shape (H, W), float32
        Local correlation and peak-to-noise ratio of the ``gSig``-filtered movie.
    noise, peak, mean : ndarray, shape (H, W), float32
        Noise sd, peak and temporal mean of the filtered movie.
    gSig, gSiz : (int, int)
        Filter width and neuron diameter used (pixels).
    center_psf : bool
    frame_ranges : tuple of (start, stop)
        Frames the images were computed from.
    seed_table : pandas.DataFrame
        Columns ``min_corr, min_pnr, n_seeds`` over a grid of thresholds.
    size_samples : ndarray, shape (N, 3)
        ``(y, x, sigma_px)``: Gaussian width of the activity-triggered image of
        the strongest seeds (see :mod:`~ace_neuro.stages.cnmfe.suggest`).
    """

    corr: np.ndarray
    pnr: np.ndarray
    noise: np.ndarray
    peak: np.ndarray
    mean: np.ndarray
    gSig: tuple[int, int]
    gSiz: tuple[int, int]
    center_psf: bool
    frame_ranges: tuple[tuple[int, int], ...]
    seed_table: pd.DataFrame = field(repr=False)
    size_samples: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 3)))

    def seeds(self, *, min_corr: float, min_pnr: float, border_pix: int = 0) -> np.ndarray:
        """Seeds ``(y, x, score)`` at the given thresholds (see :func:`find_seeds`)."""
        return find_seeds(self.corr, self.pnr, min_corr=min_corr, min_pnr=min_pnr,
                          gSiz=self.gSiz, border_pix=border_pix)


def subsample_ranges(n_frames: int, n_sample: int, *, n_segments: int = 4,
                     min_segment: int = 100) -> list[tuple[int, int]]:
    """Contiguous frame segments, evenly spread, totalling about ``n_sample`` frames.

    Contiguous (not strided) frames keep the temporal structure the noise
    estimate relies on.
    """
    if n_frames <= n_sample:
        return [(0, n_frames)]
    n_seg = max(1, min(n_segments, n_sample // max(min_segment, 1)))
    seg = n_sample // n_seg
    starts = np.linspace(0, n_frames - seg, n_seg).round().astype(int)
    return [(int(s), int(s) + seg) for s in starts]


def cnmfe_summary_images(frames, gSig=(3, 3), *, gSiz=None, n_frames: int = 1000,
                         center_psf: bool = True, block_frames: int = 128,
                         min_corr_grid: Sequence[float] = DEFAULT_MIN_CORR_GRID,
                         min_pnr_grid: Sequence[float] = DEFAULT_MIN_PNR_GRID,
                         border_pix: int = 0, size_min_corr: float = 0.6,
                         size_min_pnr: float = 4.0) -> SummaryImages:
    """Correlation and PNR images on a subsample, with a seed-count table (seconds).

    Parameters
    ----------
    frames : array-like, shape (T, H, W)
        The (motion-corrected) movie; zarr or numpy.
    gSig : (int, int)
        Filter width in pixels.
    gSiz : (int, int), optional
        Neuron diameter; default ``4 * gSig + 1``.
    n_frames : int
        At most this many frames are used, as up to 4 contiguous segments spread
        over the recording.
    center_psf : bool
        Zero-mean filter (recommended for 1-photon data).
    block_frames : int
        Frames read per block.
    min_corr_grid, min_pnr_grid : sequences of float
        Thresholds tabulated in ``seed_table``.
    border_pix : int
        Seeds closer than this to the edge are not counted.
    size_min_corr, size_min_pnr : float
        Permissive thresholds for the seeds whose size is measured for
        :func:`~ace_neuro.stages.cnmfe.suggest.suggest_parameters` (the 60
        highest-scoring are used, so a mismatched ``gSig`` still yields seeds).

    Returns
    -------
    SummaryImages
    """
    T, H, W = validate_frames(frames)
    gSig = _as_pair("gSig", gSig)
    gSiz = tuple(4 * g + 1 for g in gSig) if gSiz is None else _as_pair("gSiz", gSiz)
    if n_frames < 20:
        raise CnmfeParameterError(f"n_frames must be >= 20 for a noise estimate, got {n_frames}")
    ranges = subsample_ranges(T, int(n_frames))
    source = FrameSource(frames, block_frames=block_frames, ranges=ranges)
    stats = summarize_filtered(source, gSig, center_psf=center_psf,
                               pnr_scale=pnr_calibration(gSig, center_psf=center_psf))
    table = seed_count_table(stats.corr, stats.pnr, gSiz=gSiz, min_corr_grid=min_corr_grid,
                             min_pnr_grid=min_pnr_grid, border_pix=border_pix)
    seeds = find_seeds(stats.corr, stats.pnr, min_corr=size_min_corr, min_pnr=size_min_pnr,
                       gSiz=gSiz, border_pix=border_pix)
    sizes = measure_seed_sizes(source, seeds[:60, :2].astype(int), gSig=gSig)
    return SummaryImages(corr=stats.corr, pnr=stats.pnr, noise=stats.noise, peak=stats.peak,
                         mean=stats.mean, gSig=gSig, gSiz=gSiz, center_psf=center_psf,
                         frame_ranges=tuple(ranges), seed_table=table, size_samples=sizes)


def _as_pair(name: str, value) -> tuple[int, int]:
    if np.isscalar(value):
        value = (value, value)
    try:
        a, b = (int(round(float(v))) for v in value)
    except (TypeError, ValueError):
        raise CnmfeParameterError(f"{name} must be a pair of positive whole numbers such as (3, 3), got {value!r}") from None
    if a < 1 or b < 1:
        raise CnmfeParameterError(f"{name} must be >= 1 pixel, got {value!r}")
    return a, b
