"""The CNMF-E neuron filter: a Gaussian of the soma's width, made zero-mean for 1-photon data."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def kernel_size(gSig: Sequence[float]) -> tuple[int, int]:
    """Odd filter window ``(ky, kx)`` = ``2 * int(2 * gSig) + 1`` per axis (as CaImAn)."""
    return tuple(2 * int(2 * float(g)) + 1 for g in gSig)  # type: ignore[return-value]


def spatial_filter(block: np.ndarray, gSig: Sequence[float], *, center_psf: bool = True) -> np.ndarray:
    """Filter each frame of a (B, H, W) block with the CNMF-E neuron kernel.

    Parameters
    ----------
    block : ndarray, shape (B, H, W)
    gSig : (float, float)
        Gaussian width (rows, columns) in pixels.
    center_psf : bool
        Subtract the box mean over the kernel window (zero-mean kernel).

    Returns
    -------
    ndarray, shape (B, H, W), float32
    """
    ky, kx = kernel_size(gSig)
    out = np.empty(block.shape, np.float32)
    for i, frame in enumerate(np.asarray(block, dtype=np.float32)):
        g = cv2.GaussianBlur(frame, (kx, ky), sigmaX=float(gSig[1]), sigmaY=float(gSig[0]),
                             borderType=cv2.BORDER_REPLICATE)
        if center_psf:
            g -= cv2.boxFilter(frame, -1, (kx, ky), normalize=True, borderType=cv2.BORDER_REPLICATE)
        out[i] = g
    return out


def disk_kernel(gSig: Sequence[float]) -> np.ndarray:
    """CaImAn's default CNMF-E kernel: zero-mean Gaussian cut where it exceeds its edge value."""
    ky, kx = kernel_size(gSig)
    g = cv2.getGaussianKernel(ky, float(gSig[0])) @ cv2.getGaussianKernel(kx, float(gSig[1])).T
    inside = g >= g[0].max()
    k = np.where(inside, g - g[inside].mean(), 0.0)
    return k


def box_kernel(gSig: Sequence[float]) -> np.ndarray:
    """The kernel :func:`spatial_filter` applies with ``center_psf=True`` (Gaussian minus box mean)."""
    ky, kx = kernel_size(gSig)
    g = cv2.getGaussianKernel(ky, float(gSig[0])) @ cv2.getGaussianKernel(kx, float(gSig[1])).T
    return g - 1.0 / (ky * kx)
