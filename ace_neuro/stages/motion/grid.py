"""Piecewise-rigid patch grid and the smooth shift field interpolated between patch centres."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import CubicSpline

from ...params import MotionParams
from .validation import patch_size


@dataclass(frozen=True)
class PatchGrid:
    """Regular grid of overlapping square-ish patches covering a frame.

    Patches are ``strides + overlaps`` px on a side. Along each axis there are
    ``n = ceil((L - P) / stride) + 1`` patches spread evenly (integer step <= stride) so the
    first and last patches touch the frame edges (within ``n - 2`` px).

    Attributes
    ----------
    frame_shape : (int, int)
        ``(H, W)`` in px.
    size : (int, int)
        Patch side ``(Py, Px)`` in px.
    starts_y, starts_x : ndarray of int
        First row / column of each patch row / column.
    weights_y : ndarray, shape (H, ny), float32
        Interpolation weights from patch-centre rows to every image row: a natural cubic spline
        through the centres, extended linearly beyond the outermost centres.
    weights_x : ndarray, shape (W, nx), float32
        Same along columns.
    """

    frame_shape: tuple[int, int]
    size: tuple[int, int]
    starts_y: np.ndarray
    starts_x: np.ndarray
    weights_y: np.ndarray
    weights_x: np.ndarray

    @property
    def n_patches(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return len(self.starts_y), len(self.starts_x)

    @property
    def step(self) -> tuple[int, int]:
        """Distance between neighbouring patch starts ``(rows, columns)`` in px (0 if one patch)."""
        sy = int(self.starts_y[1] - self.starts_y[0]) if len(self.starts_y) > 1 else 0
        sx = int(self.starts_x[1] - self.starts_x[0]) if len(self.starts_x) > 1 else 0
        return sy, sx

    @property
    def centers(self) -> np.ndarray:
        """Patch centres, shape (ny, nx, 2), ``(y, x)`` in px (pixel-centre coordinates)."""
        cy = self.starts_y + (self.size[0] - 1) / 2.0
        cx = self.starts_x + (self.size[1] - 1) / 2.0
        yy, xx = np.meshgrid(cy, cx, indexing="ij")
        return np.stack([yy, xx], axis=-1).astype(np.float32)

    def field(self, patch_shifts: np.ndarray) -> np.ndarray:
        """Dense displacement field from per-patch shifts.

        Parameters
        ----------
        patch_shifts : ndarray, shape (ny, nx, 2)
            ``(dy, dx)`` per patch in px.

        Returns
        -------
        ndarray, shape (2, H, W), float32
            ``(dy, dx)`` at every pixel.
        """
        s = np.asarray(patch_shifts, dtype=np.float32)
        out = np.empty((2,) + self.frame_shape, np.float32)
        for c in (0, 1):
            rows = self.weights_y @ s[..., c]  # (H, nx): tiny
            # the (H, nx) x (nx, W) product runs in OpenCV: a threaded BLAS called from many
            # worker threads at once stalls on small products like this one
            cv2.gemm(rows, self.weights_x, 1.0, None, 0.0, dst=out[c], flags=cv2.GEMM_2_T)
        return out


def make_patch_grid(frame_shape: tuple[int, int], params: MotionParams) -> PatchGrid:
    """The patch grid that piecewise-rigid correction uses on frames of ``frame_shape`` = (H, W)."""
    h, w = (int(s) for s in frame_shape)
    py, px = patch_size(params)
    sy = _starts(h, py, int(params.strides[0]))
    sx = _starts(w, px, int(params.strides[1]))
    return PatchGrid(
        frame_shape=(h, w), size=(py, px), starts_y=sy, starts_x=sx,
        weights_y=_interpolation_weights(sy + (py - 1) / 2.0, h),
        weights_x=_interpolation_weights(sx + (px - 1) / 2.0, w),
    )


def _starts(length: int, size: int, stride: int) -> np.ndarray:
    span = length - size
    if span <= 0:
        return np.zeros(1, dtype=np.int64)
    n = int(np.ceil(span / stride)) + 1
    step = span // (n - 1)
    first = (span - step * (n - 1)) // 2
    return first + step * np.arange(n, dtype=np.int64)


def _interpolation_weights(centers: np.ndarray, length: int) -> np.ndarray:
    """(length, n) weights: value at each pixel = weights @ values at ``centers``."""
    n = len(centers)
    if n == 1:
        return np.ones((length, 1), dtype=np.float32)
    spline = CubicSpline(centers, np.eye(n), bc_type="natural", axis=0)
    slope = spline.derivative()
    pos = np.arange(length, dtype=np.float64)
    wts = spline(np.clip(pos, centers[0], centers[-1]))
    lo, hi = pos < centers[0], pos > centers[-1]
    wts[lo] += (pos[lo] - centers[0])[:, None] * slope(centers[0])[None, :]
    wts[hi] += (pos[hi] - centers[-1])[:, None] * slope(centers[-1])[None, :]
    return wts.astype(np.float32)
