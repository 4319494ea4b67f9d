"""The native CNMF-E engine: :func:`run_cnmfe`.

Steps (each "pass" streams the movie block by block; memory holds K x T traces
and per-pixel images, never pixels x frames):

1. Summary images of the ``gSig``-filtered movie on the initialisation grid
   (``tsub`` frames and ``ssub x ssub`` pixels averaged): 2 passes.
2. Seeds above ``min_corr`` and ``min_pnr`` (at most ``K`` per patch), and
   their footprints and traces (greedy CNMF-E initialisation): 2 passes.
3. Ring background (``ring_size_factor``, ``ssub_B``, ``nb = 0``), then one
   spatial and one temporal update: 3 passes.
4. A second search on the residual ``Y - B - A C`` for neurons masked by
   brighter neighbours (CaImAn's ``init_iter = 2``; its mean is known, so 3
   passes), then duplicate removal (``del_duplicates``) and merging (``merge_thr``).
5. A spatial update; with ``update_background_components`` the ring model is
   re-fitted with the latest footprints and traces; a final temporal update:
   2-3 passes. 13 passes in all with the defaults.
6. ``only_init = False`` adds two more rounds of (duplicates and merging,
   spatial update, background, temporal update). ``only_init = True`` (the
   default, as recommended for 1-photon data in CaImAn) stops after step 5,
   which is CNMF-E's initialisation: greedy init + background + a round of
   updates.

Parameters and what the native engine does with each:

=============================  ==============================================================
``method_init``                only ``corr_pnr`` (anything else is rejected)
``K``                          cap on seeds per patch (per field when ``rf`` is empty)
``gSig``, ``gSiz``             filter width and neuron diameter (pixels)
``min_corr``, ``min_pnr``      seed thresholds (PNR comparable at any ``tsub``/``ssub``)
``ring_size_factor``           ring radius = ``ring_size_factor * gSiz``
``center_psf``                 zero-mean filter kernel (else plain Gaussian)
``nb``                         must be 0 (exact ring background)
``ssub``, ``tsub``             down-sampling of the initialisation (and ``tsub`` of the
                               ring-statistics pass); updates run at full resolution
``ssub_B``                     grid of the ring weights
``rf``, ``stride``             patches for the seed search (see :mod:`.patches`)
``p``, ``decay_time``          AR order and decay of the deconvolution (see :mod:`.oasis`)
``merge_thr``                  trace correlation for merging overlapping components
``del_duplicates``             remove components with (nearly) identical footprints
``normalize_init``             initialise on the movie divided by each pixel's noise
``update_background_components``  re-fit the ring model after the updates
``only_init``                  see step 6
``low_rank_background``        must be empty/FALSE; ``nb_patch`` must be 0
``border_pix``                 no seeds and no footprint pixels within this many edge pixels
``method_deconvolution``       only ``oasis``
``use_suggested``              replace gSig/gSiz/min_corr/min_pnr by :func:`.suggest_parameters`
                               (widths measured on a 1,000-frame sample, so step 1 still
                               summarises the whole movie once)
=============================  ==============================================================
"""
from __future__ import annotations

import dataclasses
import logging
import time
from functools import partial
from typing import Callable

import cv2
import numpy as np
import scipy.sparse as sp

from ...params import CnmfeParams
from .background import ring_radius
from .errors import CnmfeParameterError
from .init import InitResult, extract_seeds
from .merge import find_duplicates, merge_components
from .oasis import DEFAULT_S_MIN_FACTOR, deconvolve, noise_mad
from .patches import assign_to_patches, cap_per_patch, patch_grid
from .result import CnmfeResult
from .split import ComponentCovariances, CovarianceTap, apply_splits
from .stream import (FrameSource, _average_time, auto_block_frames, downsample_footprints, downsample_space,
                     downsample_traces, validate_frame_rate, validate_frames)
from .suggest import advise_parameters, measure_seed_sizes, suggest_parameters
from .summary import (FilteredStats, SummaryImages, block_noise_sq, find_seeds, pnr_calibration,
                      seed_count_table, subsample_ranges, summarize_filtered)
from .update import (TemporalFit, ac_block, fit_ring_model, project_data, search_regions,
                     spatial_products, spatial_update, temporal_update)

log = logging.getLogger(__name__)

__all__ = ["run_cnmfe", "check_cnmfe_params"]

ADVICE_FRAMES = 1000  # frames on which parameter advice measures footprint widths

EXTRA_ROUNDS = 2
ProgressCallback = Callable[[str, float], None]


def check_cnmfe_params(params: CnmfeParams, dims: tuple[int, int] | None = None) -> None:
    """Reject parameter values that do not fit a movie of ``dims`` (``CnmfeParameterError``).

    Each value's own range is checked where it is declared (:class:`~ace_neuro.params.CnmfeParams`).
    """
    if dims is None:
        return
    H, W = dims
    if 2 * params.border_pix >= min(H, W):
        raise CnmfeParameterError(f"CNMF-E parameter 'border_pix' = {params.border_pix}: expected less than half "
                                  f"the frame size {H}x{W}", parameter="border_pix")
    if params.ssub > 1 and min(H, W) // params.ssub < 8:
        raise CnmfeParameterError(f"CNMF-E parameter 'ssub' = {params.ssub}: expected a factor leaving at least "
                                  f"8x8 pixels of the {H}x{W} frame", parameter="ssub")


class _Progress:
    def __init__(self, cb: ProgressCallback | None):
        self.cb = cb
        self.t0 = time.perf_counter()

    def __call__(self, stage: str, fraction: float) -> None:
        log.info("CNMF-E %-32s %5.1f%% (%.1f s)", stage, 100 * fraction, time.perf_counter() - self.t0)
        if self.cb is not None:
            self.cb(stage, float(fraction))


class _NormalisedSource:
    """Blocks of a source divided by a per-pixel scale image (``normalize_init``)."""

    def __init__(self, source, scale: np.ndarray):
        self.source = source
        self.inv = (1.0 / scale).astype(np.float32)
        self.n_frames = source.n_frames

    def __iter__(self):
        for t0, block in self.source:
            yield t0, block * self.inv


class _ResidualSource:
    """Blocks of ``Y - B - A C`` on the initialisation grid.

    The model is affine in ``Y`` and ``C``, so frames and traces are averaged in time (``tsub``)
    before the background is computed: the same residual at a ``tsub``-th of the cost.
    """

    def __init__(self, full_src: FrameSource, A, C, ring, dims, tsub: int, ssub: int):
        self.full_src, self.A, self.C, self.ring = full_src, A, C, ring
        self.dims, self.tsub, self.ssub = dims, tsub, ssub

    def __iter__(self):
        t_out = 0
        Ar = self.A.tocsr()
        for t0, block in self.full_src:
            y = _average_time(np.asarray(block, np.float32), self.tsub)
            c = _average_time(self.C[:, t0:t0 + block.shape[0]].T, self.tsub).T
            x = ac_block(Ar, c, self.dims)
            r = self.ring.subtract(y, x)  # Y - B; x now holds Y - A C
            r += x
            r -= y  # Y - B - A C, with A C computed once
            r = downsample_space(r, self.ssub)
            yield t_out, r
            t_out += r.shape[0]


def _pixel_noise(source) -> np.ndarray:
    """Per-pixel temporal noise sd of the (unfiltered) blocks (robust, see ``block_noise_sq``)."""
    nsq = None
    n = 0
    for _, block in source:
        if nsq is None:
            nsq = np.zeros(block.shape[1:])
        if block.shape[0] >= 8:
            nsq += block_noise_sq(block) * (block.shape[0] - 1)
            n += block.shape[0] - 1
    noise = np.sqrt(nsq / max(n, 1))
    pos = noise[noise > 0]
    return np.maximum(noise, pos.min() if pos.size else 1.0)


def _scaled_pair(v, s: int) -> tuple[int, int]:
    return tuple(max(1, int(round(x / s))) for x in v)  # type: ignore[return-value]


def _upsample_components(init: InitResult, *, init_dims, dims, ssub: int, tsub: int, T: int,
                         scale: np.ndarray | None) -> tuple[sp.csc_matrix, np.ndarray]:
    """Footprints from the initialisation grid to full frames; traces to every frame."""
    H, W = dims
    A0 = init.A.tocsc()
    K = A0.shape[1]
    C = np.repeat(init.C, tsub, axis=1)[:, :T] if tsub > 1 else init.C
    if C.shape[1] < T:
        C = np.pad(C, ((0, 0), (0, T - C.shape[1])), mode="edge")
    if ssub == 1 and scale is None:
        return A0.astype(np.float32), np.ascontiguousarray(C, dtype=np.float32)
    h, w = init_dims
    rows, cols, vals = [], [], []
    cscale = np.ones(K)
    for k in range(K):
        idx = A0.indices[A0.indptr[k]:A0.indptr[k + 1]]
        v = A0.data[A0.indptr[k]:A0.indptr[k + 1]].astype(np.float32)
        if scale is not None:
            v = v * scale.ravel()[idx]
        y, x = np.divmod(idx, w)
        r0, r1 = max(0, y.min() - 1), min(h, y.max() + 2)
        c0, c1 = max(0, x.min() - 1), min(w, x.max() + 2)
        box = np.zeros((r1 - r0, c1 - c0), np.float32)
        box[y - r0, x - c0] = v
        if ssub > 1:
            up = cv2.resize(box, ((c1 - c0) * ssub, (r1 - r0) * ssub), interpolation=cv2.INTER_LINEAR)
        else:
            up = box
        R0, C0 = r0 * ssub, c0 * ssub
        up = up[:max(0, H - R0), :max(0, W - C0)]
        up[up < 0] = 0
        m = up.max() if up.size else 0.0
        if m <= 0:
            continue
        yy, xx = np.nonzero(up > 0.0)
        rows.append((yy + R0) * W + xx + C0)
        vals.append(up[yy, xx] / m)
        cols.append(np.full(len(yy), k))
        cscale[k] = m
    A = sp.csc_matrix((np.concatenate(vals) if vals else np.zeros(0, np.float32),
                       (np.concatenate(rows) if rows else np.zeros(0, int),
                        np.concatenate(cols) if cols else np.zeros(0, int))), shape=(H * W, K))
    return A.astype(np.float32), np.ascontiguousarray(C * cscale[:, None], dtype=np.float32)


def _drop(A: sp.csc_matrix, C: np.ndarray, keep: np.ndarray, *extra):
    keep = np.asarray(keep)
    idx = np.flatnonzero(keep) if keep.dtype == bool else keep
    out = [A[:, idx].tocsc(), C[idx]]
    out.extend(e[idx] for e in extra)
    return out


def _live(A: sp.csc_matrix, C: np.ndarray) -> np.ndarray:
    return (np.asarray(A.sum(axis=0)).ravel() > 0) & (C.max(axis=1) > 0)


def run_cnmfe(frames, params: CnmfeParams, *, frame_rate: float, block_frames: int | None = None,
              progress: ProgressCallback | None = None) -> CnmfeResult:
    """Extract neurons from a 1-photon movie with CNMF-E (native engine).

    Parameters
    ----------
    frames : array-like, shape (T, H, W)
        Motion-corrected movie, any numeric dtype; anything sliceable along axis
        0 (zarr array in production, numpy in tests). Read block by block.
    params : CnmfeParams
        Stage parameters (see the table in this module's docstring).
    frame_rate : float
        Frames per second of the recording (used with ``decay_time``).
    block_frames : int, optional
        Frames per block read; default: about 64 MiB of float32 frames, at most
        128 (the engine holds about three blocks at a time).
    progress : callable(stage: str, fraction: float), optional
        Called at each step.

    Returns
    -------
    CnmfeResult

    Raises
    ------
    CnmfeInputError
        If ``frames`` is not a usable (T, H, W) movie.
    CnmfeParameterError
        If a parameter is out of range or not supported by the native engine.
    """
    T, H, W = validate_frames(frames)
    dims = (H, W)
    frame_rate = validate_frame_rate(frame_rate)
    if block_frames is None:
        block_frames = auto_block_frames(dims)
    if block_frames < 1:
        raise CnmfeParameterError(f"block_frames must be >= 1, got {block_frames}")
    check_cnmfe_params(params, dims)
    report = _Progress(progress)
    notes: list[str] = []
    ssub, tsub = int(params.ssub), int(params.tsub)
    gSig, gSiz = tuple(params.gSig), tuple(params.gSiz)
    min_corr, min_pnr = float(params.min_corr), float(params.min_pnr)
    block_frames = max(tsub, (int(block_frames) // tsub) * tsub)
    init_src = FrameSource(frames, block_frames=block_frames, tsub=tsub, ssub=ssub)
    full_src = FrameSource(frames, block_frames=block_frames)
    init_dims = init_src.dims
    # PNR comparable with min_pnr whatever the averaging (noise drops by sqrt(tsub) * ssub)
    # and in the units of CaImAn's default kernel (see summary.pnr_calibration)
    pnr_scale = float(np.sqrt(tsub) * ssub)
    scale_img = None
    src_i = init_src
    if params.normalize_init:
        report("noise normalisation", 0.0)
        scale_img = _pixel_noise(init_src)
        src_i = _NormalisedSource(init_src, scale_img)
        notes.append("normalize_init: initialisation on the movie divided by each pixel's noise")

    # 1. summary images ---------------------------------------------------------------
    report("summary images", 0.02)
    sample = _advice_sample(frames, T, block_frames, tsub, ssub)
    advice: tuple = ()
    if params.use_suggested:
        sample_i = sample if scale_img is None else _NormalisedSource(sample, scale_img)
        gSig, gSiz, min_corr, min_pnr, stats = _apply_suggestion(src_i, sample_i, gSig, gSiz, ssub, params,
                                                                 pnr_scale, notes)
        gSig_i, gSiz_i = _scaled_pair(gSig, ssub), _scaled_pair(gSiz, ssub)
    else:
        gSig_i, gSiz_i = _scaled_pair(gSig, ssub), _scaled_pair(gSiz, ssub)
        stats = _summary_stats(src_i, gSig_i, params.center_psf, pnr_scale)
        advice = _advice(sample, stats, gSig_i, gSiz_i, params)
        for a in advice:
            log.warning(a.message)

    # 2. greedy initialisation --------------------------------------------------------
    report("initialisation", 0.12)
    rf_i = None if params.rf is None else max(1, int(round(params.rf / ssub)))
    grid = patch_grid(init_dims, rf_i, int(round(params.stride / ssub)))
    border_i = int(np.ceil(params.border_pix / ssub))
    seeds = find_seeds(stats.corr, stats.pnr, min_corr=min_corr, min_pnr=min_pnr, gSiz=gSiz_i,
                       border_pix=border_i)
    owner = assign_to_patches(seeds[:, :2], grid)
    seeds = seeds[cap_per_patch(seeds[:, 2], owner, params.K)]
    all_seeds = [seeds[:, :2]]
    init1 = extract_seeds(src_i, stats, seeds, gSig=gSig_i, gSiz=gSiz_i, center_psf=params.center_psf)
    log.info("round 1: %d seeds -> %d components", len(seeds), init1.A.shape[1])
    A, C = _upsample_components(init1, init_dims=init_dims, dims=dims, ssub=ssub, tsub=tsub, T=T,
                                scale=scale_img)

    # 3. background, one round of updates ---------------------------------------------------
    radius = ring_radius(gSiz, params.ring_size_factor, params.ssub_B)
    fit_ring = partial(fit_ring_model, full_src, dims=dims, radius=radius, ssub_B=params.ssub_B, tsub=tsub)
    deconv = partial(deconvolve, p=params.p, decay_time=params.decay_time, frame_rate=float(frame_rate),
                     s_min_factor=DEFAULT_S_MIN_FACTOR)
    report("background", 0.25)
    ring, ac_mean = fit_ring(A, C), _ac_mean(A, C, dims)
    A, C = _spatial(full_src, A, C, ring, dims, gSig, params.border_pix)
    report("temporal update", 0.35)
    tf, A = _temporal(full_src, A, C, ring, dims, deconv)
    C = tf.C

    # 4. residual search, merge, duplicates ---------------------------------------------
    report("residual search", 0.45)
    res_mean = _residual_mean(ring, ac_mean, A, C, dims)
    tf_rows_before = A.shape[1]
    A, C, tf, new_seeds = _residual_round(full_src, A, C, tf, ring, dims, init_dims, stats, grid, params,
                                          gSig_i, gSiz_i, min_corr, min_pnr, border_i, tsub, ssub, T, scale_img,
                                          res_mean)
    all_seeds.append(new_seeds)
    if A.shape[1] > tf_rows_before:
        # new components (split neurons, residual seeds) get demixed traces before merging
        # decisions compare them with their neighbours
        report("temporal update", 0.55)
        tf, A = _temporal(full_src, A, C, ring, dims, deconv)
        C = tf.C
    report("merge", 0.6)
    A, C, tf = _merge_and_dedupe(A, C, tf, dims, gSig, params)

    # 5. updates: spatial, background (with the latest traces), temporal ------------------------
    report("spatial update", 0.65)
    A, C = _spatial(full_src, A, C, ring, dims, gSig, params.border_pix)
    if params.update_background_components:
        report("background", 0.75)
        ring = fit_ring(A, C)
    report("temporal update", 0.82)
    tf, A = _temporal(full_src, A, C, ring, dims, deconv)
    C = tf.C
    # 6. further rounds ----------------------------------------------------------------------------
    if not params.only_init:
        for it in range(EXTRA_ROUNDS):
            report(f"extra round {it + 1}", 0.88 + 0.05 * it)
            A, C, tf = _merge_and_dedupe(A, C, tf, dims, gSig, params)
            A, C = _spatial(full_src, A, C, ring, dims, gSig, params.border_pix)
            if params.update_background_components:
                ring = fit_ring(A, C)
            tf, A = _temporal(full_src, A, C, ring, dims, deconv)
            C = tf.C
    report("done", 1.0)
    seeds_full = np.concatenate([s for s in all_seeds if len(s)] or [np.zeros((0, 2))]).astype(float)
    seeds_full = seeds_full * ssub + (ssub - 1) / 2.0
    used = dataclasses.asdict(params)
    used.update(parameter_advice=[a.message for a in advice])
    used.update(gSig=list(gSig), gSiz=list(gSiz), min_corr=min_corr, min_pnr=min_pnr,
                ring_radius_px=radius * params.ssub_B, engine="native", notes=notes,
                s_min_factor=DEFAULT_S_MIN_FACTOR,
                seed_counts={"initial": int(len(all_seeds[0])), "residual": int(sum(len(s) for s in all_seeds[1:]))})
    return CnmfeResult(A=A.astype(np.float32).tocsc(), C=tf.C.astype(np.float32), S=tf.S.astype(np.float32),
                       YrA=tf.YrA.astype(np.float32), sn=tf.sn.astype(np.float64),
                       baseline=tf.baseline.astype(np.float64), g=tf.g.astype(np.float64),
                       b0=ring.b0, W=ring.W, ring_coef=ring.coef, ring_radius=ring.radius,
                       ssub_B=ring.ssub_B, n_harmonics=ring.n_harmonics,
                       corr=_to_full_image(stats.corr, dims, ssub), pnr=_to_full_image(stats.pnr, dims, ssub),
                       seeds=seeds_full, dims=dims, frame_rate=float(frame_rate), params=used)


def _to_full_image(img: np.ndarray, dims, ssub: int) -> np.ndarray:
    if ssub == 1:
        return img.astype(np.float32)
    H, W = dims
    h, w = img.shape
    up = cv2.resize(img.astype(np.float32), (w * ssub, h * ssub), interpolation=cv2.INTER_LINEAR)
    return up[:H, :W]


def _spatial(src, A, C, ring, dims, gSig, border_pix):
    if A.shape[1] == 0:
        return A, C
    regions = search_regions(A, dims, max(1, int(max(gSig))))
    YC = spatial_products(src, A, C, ring, dims, regions)
    A, C = spatial_update(A, C, YC, regions, dims, border_pix=border_pix)
    keep = _live(A, C)
    return _drop(A, C, keep)


def _temporal(src, A, C, ring, dims, deconv) -> tuple[TemporalFit, sp.csc_matrix]:
    AtY = project_data(src, A, C, ring, dims)
    tf = temporal_update(AtY, A, C, deconv=deconv)
    keep = tf.C.max(axis=1) > 0 if tf.C.shape[0] else np.zeros(0, bool)
    if not keep.all():
        idx = np.flatnonzero(keep)
        tf = TemporalFit(C=tf.C[idx], S=tf.S[idx], YrA=tf.YrA[idx], baseline=tf.baseline[idx],
                         sn=tf.sn[idx], g=tf.g[idx])
        A = A[:, idx].tocsc()
    return tf, A


def _quality(tf: TemporalFit) -> np.ndarray:
    sn = np.where(tf.sn > 0, tf.sn, 1.0)
    return tf.C.max(axis=1) / sn if tf.C.shape[0] else np.zeros(0)


def _merge_and_dedupe(A, C, tf: TemporalFit, dims, gSig, params: CnmfeParams):
    """Duplicates first (needs per-component quality), then merging."""
    if params.del_duplicates and A.shape[1] > 1:
        keep = find_duplicates(A, dims, quality=_quality(tf), gSig=gSig)
        if not keep.all():
            log.info("removed %d duplicate components", int((~keep).sum()))
            idx = np.flatnonzero(keep)
            A, C = A[:, idx].tocsc(), C[idx]
            tf = TemporalFit(C=tf.C[idx], S=tf.S[idx], YrA=tf.YrA[idx], baseline=tf.baseline[idx],
                             sn=tf.sn[idx], g=tf.g[idx])
    A2, C2, n = merge_components(A, C, merge_thr=params.merge_thr, dims=dims)
    if n:
        log.info("merged %d groups of components", n)
        # merged traces are re-deconvolved by the next temporal update; keep shapes consistent
        K = A2.shape[1]
        tf = TemporalFit(C=C2, S=np.zeros_like(C2), YrA=np.zeros_like(C2), baseline=np.zeros(K),
                         sn=np.ones(K), g=np.zeros((K, 2)))
        A, C = A2, C2
    return A, C, tf


def _ac_mean(A, C, dims) -> np.ndarray:
    """Temporal mean of ``A C`` as an (H, W) image."""
    m = C.mean(axis=1) if C.shape[1] else np.zeros(C.shape[0])
    return np.asarray(A @ m).reshape(dims)


def _residual_mean(ring, ac_mean_fit: np.ndarray, A, C, dims) -> np.ndarray:
    """Temporal mean of the residual ``Y - B - A C`` (full frames), without a pass.

    ``mean(Y) = b0 + mean(A C)`` at the time the ring model was fitted, so with
    ``delta = mean(A C)_fit - mean(A C)_now`` the residual's mean is
    ``delta - W delta`` (the ring model is linear).
    """
    delta = (ac_mean_fit - _ac_mean(A, C, dims)).astype(np.float32)
    return delta - ring.fluctuation((ring.b0 + delta)[None])[0]


def _residual_round(full_src, A, C, tf, ring, dims, init_dims, stats: FilteredStats, grid, params,
                    gSig_i, gSiz_i, min_corr, min_pnr, border_i, tsub, ssub, T, scale_img, res_mean):
    """Search the residual for neurons the first round missed; append them."""
    if params.K is not None and params.rf is None and A.shape[1] >= params.K:
        return A, C, tf, np.zeros((0, 2))
    res_src = _ResidualSource(full_src, A, C, ring, dims, tsub, ssub)
    n_init_frames = stats.n_frames
    A_i = downsample_footprints(A, dims, ssub)
    C_i = downsample_traces(C, tsub, full_src.block_frames)
    covariances = ComponentCovariances(A_i, C_i, init_dims, n_init_frames)
    tapped = CovarianceTap(res_src, covariances)
    # the residual is in movie units: reuse the noise image (and the known mean: one pass)
    # unless the initialisation was noise-normalised
    if scale_img is None:
        mean_i = downsample_space(res_mean[None], ssub)[0]
        stats2 = summarize_filtered(tapped, gSig_i, center_psf=params.center_psf, pnr_scale=stats.pnr_scale,
                                    noise=stats.noise, known_mean=(mean_i, stats.n_frames))
    else:
        stats2 = summarize_filtered(tapped, gSig_i, center_psf=params.center_psf, pnr_scale=stats.pnr_scale)
    # pixels inside existing footprints (above half max) are not searched again
    occupied = np.asarray((A >= 0.5).sum(axis=1)).reshape(dims) > 0
    occ_i = downsample_space(occupied[None].astype(np.float32), ssub)[0] > 0
    seeds = find_seeds(stats2.corr, stats2.pnr, min_corr=min_corr, min_pnr=min_pnr, gSiz=gSiz_i,
                       border_pix=border_i, exclude=occ_i)
    splits = covariances.splits()
    if splits:
        # A C is unchanged by a split, so the residual (and its seeds) stay valid
        A, C = apply_splits(A, C, splits, dims, init_dims, ssub)
        tf = _append_placeholder_traces(tf, C)
        log.info("round 2: %d components hold two neurons and were split", len(splits))
    if params.K is not None and len(seeds):
        owner = assign_to_patches(seeds[:, :2], grid)
        # seeds already used per patch count against K
        from .merge import footprint_centroids

        cen = footprint_centroids(A, dims) / ssub
        used = np.bincount(assign_to_patches(cen[np.isfinite(cen[:, 0])], grid), minlength=len(grid))
        keep = np.zeros(len(seeds), bool)
        for pidx in np.unique(owner):
            idx = np.flatnonzero(owner == pidx)
            room = max(0, params.K - int(used[pidx]))
            keep[idx[np.argsort(-seeds[idx, 2], kind="stable")[:room]]] = True
        seeds = seeds[keep]
    if len(seeds) == 0:
        return A, C, tf, np.zeros((0, 2))
    init2 = extract_seeds(res_src, stats2, seeds, gSig=gSig_i, gSiz=gSiz_i, center_psf=params.center_psf)
    log.info("round 2: %d seeds -> %d components", len(seeds), init2.A.shape[1])
    if init2.A.shape[1] == 0:
        return A, C, tf, seeds[:, :2]
    A2, C2 = _upsample_components(init2, init_dims=init_dims, dims=dims, ssub=ssub, tsub=tsub, T=T, scale=None)
    A = sp.hstack([A, A2]).tocsc()
    C = np.concatenate([C, C2])
    return A, C, _append_placeholder_traces(tf, C), seeds[:, :2]


def _append_placeholder_traces(tf: TemporalFit, C: np.ndarray) -> TemporalFit:
    """``tf`` extended to the rows of ``C`` (new components: their trace, no spikes yet)."""
    n_old = tf.C.shape[0]
    extra = C[n_old:]
    sn = noise_mad(extra) if extra.shape[1] >= 4 else np.ones(len(extra))
    return TemporalFit(C=C, S=np.concatenate([tf.S, np.zeros_like(extra)]),
                       YrA=np.concatenate([tf.YrA, np.zeros_like(extra)]),
                       baseline=np.concatenate([tf.baseline, np.zeros(len(extra))]),
                       sn=np.concatenate([tf.sn, np.maximum(sn, 1e-9)]),
                       g=np.concatenate([tf.g, np.zeros((len(extra), 2))]))


def _summary_stats(src, gSig_i, center_psf: bool, pnr_scale: float) -> FilteredStats:
    """Correlation and PNR statistics of ``src`` filtered with ``gSig_i`` (two passes)."""
    return summarize_filtered(src, gSig_i, center_psf=center_psf,
                              pnr_scale=pnr_scale * pnr_calibration(gSig_i, center_psf=center_psf))


def _advice_sample(frames, n_frames: int, block_frames: int, tsub: int, ssub: int) -> FrameSource:
    """``ADVICE_FRAMES`` frames in a few contiguous runs, on the initialisation grid: where footprint
    widths are measured, for the advice and for ``use_suggested`` alike."""
    return FrameSource(frames, block_frames=block_frames, tsub=tsub, ssub=ssub,
                       ranges=subsample_ranges(n_frames, ADVICE_FRAMES))


def _apply_suggestion(src, sample, gSig, gSiz, ssub, params, pnr_scale, notes):
    """Replace gSig/gSiz/min_corr/min_pnr by suggestions from the data (use_suggested).

    The footprint widths (hence ``gSig``) are measured on ``sample`` filtered with the CSV's
    ``gSig``, so the summary of the whole movie is computed once, with the suggested ``gSig``;
    the thresholds come from that summary.
    """
    gSig_i, gSiz_i = _scaled_pair(gSig, ssub), _scaled_pair(gSiz, ssub)
    sample_stats = _summary_stats(sample, gSig_i, params.center_psf, pnr_scale)
    measured = _summary_from_stats(sample, sample_stats, gSig_i, gSiz_i, params.center_psf)
    sug = suggest_parameters(measured)
    stats = _summary_stats(src, sug.gSig, params.center_psf, pnr_scale)
    sug2 = suggest_parameters(_summary_from_stats(src, stats, sug.gSig, sug.gSiz, params.center_psf,
                                                  sizes=measured.size_samples))
    min_corr, min_pnr = sug2.min_corr, sug2.min_pnr
    new_gSig = tuple(int(g * ssub) for g in sug.gSig)
    new_gSiz = tuple(4 * g + 1 for g in new_gSig)
    notes.append(f"use_suggested: gSig {tuple(gSig)} -> {new_gSig}, gSiz {tuple(gSiz)} -> {new_gSiz}, "
                 f"min_corr {params.min_corr} -> {min_corr}, min_pnr {params.min_pnr} -> {min_pnr}")
    notes.append(sug.notes[0])
    notes.extend(sug2.notes[1:])
    return new_gSig, new_gSiz, float(min_corr), float(min_pnr), stats


def _advice(sample, stats: FilteredStats, gSig_i, gSiz_i, params: CnmfeParams) -> tuple:
    """Where the CSV's gSig, min_corr or min_pnr is far from what the data show.

    The footprints are measured on ``sample`` (:func:`_advice_sample`), so the advice costs a
    fraction of one pass.
    """
    ssub = int(params.ssub)
    sug = suggest_parameters(_summary_from_stats(sample, stats, gSig_i, gSiz_i, params.center_psf))
    sug = dataclasses.replace(sug, gSig=tuple(int(g * ssub) for g in sug.gSig),
                              footprint_sigma_px=sug.footprint_sigma_px * ssub)
    return advise_parameters(gSig=params.gSig, min_corr=params.min_corr, min_pnr=params.min_pnr, suggestion=sug)


def _summary_from_stats(src, stats: FilteredStats, gSig, gSiz, center_psf, sizes=None) -> SummaryImages:
    if sizes is None:
        seeds = find_seeds(stats.corr, stats.pnr, min_corr=0.6, min_pnr=4.0, gSiz=gSiz)
        sizes = measure_seed_sizes(src, seeds[:60, :2].astype(int), gSig=gSig)
    return SummaryImages(corr=stats.corr, pnr=stats.pnr, noise=stats.noise, peak=stats.peak, mean=stats.mean,
                         gSig=tuple(gSig), gSiz=tuple(gSiz), center_psf=center_psf,
                         frame_ranges=((0, stats.n_frames),),
                         seed_table=seed_count_table(stats.corr, stats.pnr, gSiz=gSiz), size_samples=sizes)
