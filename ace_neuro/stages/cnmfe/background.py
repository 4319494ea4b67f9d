"""The CNMF-E ring background model, estimated and applied block by block.

Zhou et al. (2018) model the 1-photon background of pixel ``i`` as a constant
``b0[i]`` plus a weighted sum of the fluctuations on a ring of pixels around it:

    B = b0 1' + W (Y - A C - b0 1'),   W[i, j] != 0 only for j on the ring of i.

The ring has radius ``ring_size_factor * gSiz`` pixels (CaImAn's and the
original CNMF-E's convention: ``gSiz`` is the neuron diameter, so the ring lies
well outside the neuron) and is one pixel thick. Some write the radius as
``ring_size_factor * gSiz / 2``; CaImAn's convention is kept so that the lab's
``ring_size_factor`` means what it meant in CaImAn (on synthetic recordings it
also fits the true background better: RMSE 0.25 vs 0.29 counts at 200x200). Like CaImAn, W lives on a grid
down-sampled by ``ssub_B`` and the background is up-sampled (bilinearly) to the
full frame; ``b0`` is full resolution.

Estimation. Fitting every ring weight freely needs a (ring x ring) covariance
per pixel, which cannot be accumulated cheaply in a stream. Here each pixel's
ring weights are constrained to a low-order Fourier series in the ring angle
theta: ``W[i, j] = sum_m beta[m, i] phi_m(theta_ij)`` with
``phi = 1, cos(theta), sin(theta), ..., cos(M theta), sin(M theta)``. This keeps
what the ring model is for (a locally adaptive, anisotropic average of the
surroundings that follows gradients and curvature of a smooth background)
with ``2M + 1`` unknowns per pixel. The sufficient statistics (Gram matrices
of the ring-harmonic images, their cross-products with the pixel) are
accumulated in one pass using FFT convolutions; the per-pixel least-squares
problems are solved at the end with a small ridge. ``W`` is materialised as a
scipy.sparse matrix on request (:attr:`RingModel.W`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import scipy.fft as sfft
import scipy.sparse as sp

from .errors import CnmfeParameterError
from .stream import downsample_space, upsample_space

__all__ = ["RingModel", "ring_radius", "ring_offsets", "RingFilter", "RingAccumulator"]

#: number of angular harmonics of the ring weights (2M + 1 basis functions)
N_HARMONICS = 2
#: ridge added to each pixel's normal equations, relative to their mean diagonal
RIDGE = 1e-3
#: threads for the FFTs (the per-frame transforms are independent)
FFT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def ring_radius(gSiz, ring_size_factor: float, ssub_B: int) -> int:
    """Ring radius in pixels of the ``ssub_B`` grid: ``round(ring_size_factor * gSiz / ssub_B)``."""
    if not ring_size_factor > 0:
        raise CnmfeParameterError(f"ring_size_factor must be > 0, got {ring_size_factor!r}")
    g = float(np.mean(gSiz))
    return max(1, int(round(ring_size_factor * g / ssub_B)))


def ring_offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``(dy, dx)`` of the ring pixels: ``radius^2 < dy^2 + dx^2 <= (radius + 1)^2``."""
    r = int(radius)
    yy, xx = np.mgrid[-r - 1:r + 2, -r - 1:r + 2]
    d2 = yy ** 2 + xx ** 2
    on = (d2 > r * r) & (d2 <= (r + 1) ** 2)
    return yy[on], xx[on]


def _basis(dy: np.ndarray, dx: np.ndarray, n_harmonics: int) -> np.ndarray:
    """Basis functions on the ring, shape (2M+1, n_ring); phi_0 averages the ring."""
    theta = np.arctan2(dy, dx)
    n = len(dy)
    rows = [np.full(n, 1.0 / n)]
    for m in range(1, n_harmonics + 1):
        rows.append(2.0 * np.cos(m * theta) / n)
        rows.append(2.0 * np.sin(m * theta) / n)
    return np.array(rows)


class RingFilter:
    """Ring-harmonic images ``h_m(t, i) = sum_j phi_m(theta_ij) x(t, j)`` via FFT.

    Pixels outside the frame count as zero (so rings are truncated at edges,
    exactly as the materialised sparse ``W``).
    """

    def __init__(self, dims: tuple[int, int], radius: int, n_harmonics: int = N_HARMONICS):
        self.dims = tuple(int(d) for d in dims)
        self.radius = int(radius)
        self.n_harmonics = int(n_harmonics)
        dy, dx = ring_offsets(radius)
        self.dy, self.dx = dy, dx
        self.phi = _basis(dy, dx, n_harmonics)
        R = self.radius + 1
        h, w = self.dims
        self.fft_shape = (sfft.next_fast_len(h + 2 * R, real=True), sfft.next_fast_len(w + 2 * R, real=True))
        kern = np.zeros((len(self.phi), 2 * R + 1, 2 * R + 1))
        # correlation kernel k[R + dy, R + dx] = phi; convolution uses its flip
        kern[:, R - dy, R - dx] = self.phi
        self._R = R
        self._kf = sfft.rfft2(kern, s=self.fft_shape).astype(np.complex64)

    @property
    def n_basis(self) -> int:
        return self.phi.shape[0]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Ring-harmonic images of a (B, h, w) block: shape (2M+1, B, h, w), float32."""
        x = np.asarray(x, dtype=np.float32)
        X = sfft.rfft2(x, s=self.fft_shape, workers=FFT_WORKERS)
        h, w = self.dims
        R = self._R
        out = np.empty((self.n_basis,) + x.shape, np.float32)
        for m in range(self.n_basis):
            full = sfft.irfft2(X * self._kf[m], s=self.fft_shape, workers=FFT_WORKERS)
            out[m] = full[:, R:R + h, R:R + w]
        return out

    def combine(self, x: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """``sum_m coef[m] * h_m``: the ring prediction for a (B, h, w) block."""
        x = np.asarray(x, dtype=np.float32)
        X = sfft.rfft2(x, s=self.fft_shape, workers=FFT_WORKERS)
        h, w = self.dims
        R = self._R
        out = np.zeros(x.shape, np.float32)
        for m in range(self.n_basis):
            full = sfft.irfft2(X * self._kf[m], s=self.fft_shape, workers=FFT_WORKERS)
            out += coef[m] * full[:, R:R + h, R:R + w]
        return out


class RingAccumulator:
    """Streaming sufficient statistics for the per-pixel ring regression."""

    def __init__(self, ring: RingFilter):
        self.ring = ring
        nb = ring.n_basis
        h, w = ring.dims
        P = h * w
        self.G = np.zeros((P, nb, nb))
        self.c = np.zeros((P, nb))
        self.sh = np.zeros((P, nb))
        self.sx = np.zeros(P)
        self.T = 0

    def add(self, x: np.ndarray) -> None:
        """Accumulate a (B, h, w) block of (offset-centred) residual frames."""
        x = np.asarray(x, dtype=np.float32)
        B = x.shape[0]
        Hm = self.ring.apply(x).reshape(self.ring.n_basis, B, -1)  # (nb, B, P)
        xf = x.reshape(B, -1)
        nb = self.ring.n_basis
        for m in range(nb):
            for n in range(m, nb):
                v = np.einsum("tp,tp->p", Hm[m], Hm[n])
                self.G[:, m, n] += v
                if n != m:
                    self.G[:, n, m] += v
            self.c[:, m] += np.einsum("tp,tp->p", Hm[m], xf)
        self.sh += Hm.sum(axis=1, dtype=np.float64).T
        self.sx += xf.sum(axis=0, dtype=np.float64)
        self.T += B

    def solve(self, ridge: float = RIDGE) -> np.ndarray:
        """Ring coefficients, shape (2M+1, h, w)."""
        if self.T < 2:
            raise CnmfeParameterError("need at least 2 frames to estimate the ring background")
        T = self.T
        mh = self.sh / T
        mx = self.sx / T
        cov = self.G / T - mh[:, :, None] * mh[:, None, :]
        cross = self.c / T - mh * mx[:, None]
        nb = cov.shape[1]
        diag = np.einsum("pii->p", cov) / nb
        lam = ridge * np.maximum(diag, 0) + 1e-12 * (np.abs(diag).max() + 1e-12)
        cov = cov + lam[:, None, None] * np.eye(nb)[None]
        beta = np.linalg.solve(cov, cross[:, :, None])[:, :, 0]
        h, w = self.ring.dims
        return beta.T.reshape(nb, h, w).astype(np.float32)


@dataclass(frozen=True)
class RingModel:
    """Fitted ring background.

    Attributes
    ----------
    dims : (H, W)
        Full frame size.
    ssub_B : int
        Down-sampling of the ring grid.
    radius : int
        Ring radius on the ``ssub_B`` grid (pixels).
    n_harmonics : int
        Angular harmonics of the ring weights.
    coef : ndarray, shape (2M+1, h, w), float32
        Ring-harmonic coefficients per grid pixel (``h = ceil(H / ssub_B)``).
    b0 : ndarray, shape (H, W), float32
        Constant background (temporal mean of ``Y - A C``).
    """

    dims: tuple[int, int]
    ssub_B: int
    radius: int
    n_harmonics: int
    coef: np.ndarray
    b0: np.ndarray

    @cached_property
    def _filter(self) -> RingFilter:
        return RingFilter(self.coef.shape[1:], self.radius, self.n_harmonics)

    @cached_property
    def _b0_low(self) -> np.ndarray:
        return downsample_space(self.b0[None], self.ssub_B)[0]

    def operator(self, x: np.ndarray) -> np.ndarray:
        """The linear part ``F x = U W D x`` of the model for (B, H, W) images (D: down-sampling to
        the ring grid, W: ring weights, U: bilinear up-sampling), so that ``Y - B = (Y - b0) - F (Y - A C - b0)``."""
        return self.operator_low(downsample_space(x, self.ssub_B))

    def operator_low(self, z: np.ndarray) -> np.ndarray:
        """``U W z`` for (B, h, w) images already on the ring grid: (B, H, W)."""
        return upsample_space(self._filter.combine(z, self.coef), self.ssub_B, self.dims)

    def adjoint(self, A: sp.spmatrix) -> sp.csc_matrix:
        """``F' A`` for the columns of a sparse (H*W, K) matrix (e.g. footprints), sparse (H*W, K).

        With it, a footprint's projection of the background-subtracted data needs no background:
        ``a' F x = (F' a)' x``. Exact (the sparse matrices of D, W and U are those of the images).
        """
        down, up = self._resampling
        low = up.T @ sp.csc_matrix(A, dtype=np.float32)
        return (down.T @ (self.W.T @ low)).tocsc()

    @cached_property
    def _resampling(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Sparse D (h*w, H*W) and U (H*W, h*w) of :func:`downsample_space` / :func:`upsample_space`."""
        H, W = self.dims
        s = self.ssub_B
        down = sp.kron(_down_matrix(H, s), _down_matrix(W, s), format="csr")
        up = sp.kron(_up_matrix(H, s), _up_matrix(W, s), format="csr")
        return down.astype(np.float32), up.astype(np.float32)

    def fluctuation(self, resid: np.ndarray) -> np.ndarray:
        """``W (Y - A C - b0)`` up-sampled to full frames, for a (B, H, W) block of ``Y - A C``."""
        return self.operator_low(downsample_space(resid, self.ssub_B) - self._b0_low)

    def background(self, y: np.ndarray, ac: np.ndarray) -> np.ndarray:
        """Background ``B`` of a (B, H, W) block given the data and ``A C`` of the same frames."""
        return self.fluctuation(np.asarray(y, np.float32) - ac) + self.b0

    def subtract(self, y: np.ndarray, ac: np.ndarray) -> np.ndarray:
        """``Y - B`` for a (B, H, W) block; ``ac`` (``A C`` of the block) is overwritten.

        Works in place to hold about three blocks at a time.
        """
        y = np.asarray(y, np.float32)
        np.subtract(y, ac, out=ac)  # ac now holds Y - A C
        fl = self.fluctuation(ac)
        np.subtract(y, fl, out=fl)
        fl -= self.b0
        return fl

    @cached_property
    def W(self) -> sp.csr_matrix:
        """Ring weights as a sparse (h*w, h*w) matrix on the ``ssub_B`` grid (C order)."""
        f = self._filter
        h, w = f.dims
        yy, xx = np.mgrid[0:h, 0:w]
        rows, cols, vals = [], [], []
        coef = self.coef.reshape(f.n_basis, -1)  # (nb, P)
        weights = coef.T @ f.phi  # (P, n_ring)
        for j, (dy, dx) in enumerate(zip(f.dy, f.dx)):
            ty, tx = yy + dy, xx + dx
            ok = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
            src = (yy * w + xx)[ok]
            rows.append(src)
            cols.append((ty * w + tx)[ok])
            vals.append(weights[src, j])
        rows = np.concatenate(rows)
        cols = np.concatenate(cols)
        vals = np.concatenate(vals).astype(np.float32)
        return sp.csr_matrix((vals, (rows, cols)), shape=(h * w, h * w))


def _down_matrix(n: int, s: int) -> sp.csr_matrix:
    """1-D tile averaging of :func:`downsample_space` (last tile padded by replication), (ceil(n/s), n)."""
    m = -(-n // s)
    rows = np.repeat(np.arange(m), s)
    cols = np.minimum(np.arange(m * s), n - 1)
    return sp.csr_matrix((np.full(m * s, 1.0 / s), (rows, cols)), shape=(m, n))


def _up_matrix(n: int, s: int) -> sp.csr_matrix:
    """1-D bilinear up-sampling of :func:`upsample_space` (cropped to ``n``), (n, ceil(n/s))."""
    m = -(-n // s)
    if s == 1:
        return sp.identity(n, format="csr")
    eye = np.eye(m, dtype=np.float32)
    # resizing only the height of an identity image up-samples each unit vector (its columns)
    cols = cv2.resize(eye, (m, m * s), interpolation=cv2.INTER_LINEAR)[:n]
    cols[np.abs(cols) < 1e-7] = 0.0
    return sp.csr_matrix(cols.astype(np.float64))
