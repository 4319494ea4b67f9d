"""Applying shifts: one warp per frame (OpenCV), borders filled by copy, NaN or zero.

Sign convention: a shift ``(dy, dx)`` is the displacement of the content,
``observed(y, x) = template(y - dy, x - dx)``; the corrected frame is
``corrected(y, x) = observed(y + dy, x + dx)``.
"""
from __future__ import annotations

import cv2
import numpy as np
import scipy.fft as sfft

_EPS = 1e-3  # px: a sample this close to the frame edge still counts as inside


def keys_weights(t: float) -> np.ndarray:
    """Keys cubic-convolution weights (a = -0.5) for taps at -1, 0, 1, 2, fraction ``t`` in [0, 1).

    Unlike OpenCV's bicubic kernel (a = -0.75), this kernel reproduces linear ramps, so a
    sub-pixel shift moves smooth content by exactly the requested amount.
    """
    x = np.abs(np.array([t + 1.0, t, 1.0 - t, 2.0 - t]))
    a = -0.5
    w = np.where(x <= 1, (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1,
                 np.where(x < 2, a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a, 0.0))
    return w.astype(np.float32).reshape(4, 1)


def warp_rigid(frame: np.ndarray, shift, *, out: np.ndarray | None = None) -> np.ndarray:
    """Undo a rigid shift with separable Keys cubic interpolation; borders copy the nearest valid pixel.

    Parameters
    ----------
    frame : ndarray, shape (H, W), float32
    shift : (float, float)
        ``(dy, dx)`` px.
    out : ndarray, shape (H, W), float32, optional
    """
    h, w = frame.shape
    dy, dx = float(shift[0]), float(shift[1])
    pad = max(abs(int(np.floor(dy))), abs(int(np.floor(dx)))) + 3
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    res = _keys_window(padded, pad, pad, h, w, dy, dx)
    if out is None:
        return np.ascontiguousarray(res)
    out[...] = res
    return out


def sample_rigid_window(frame: np.ndarray, shift, top: int, left: int, height: int, width: int) -> np.ndarray:
    """``frame(y + dy, x + dx)`` for the window ``[top, top+height) x [left, left+width)``, Keys cubic.

    The same interpolation as :func:`warp_rigid`, without padding or warping the whole frame;
    the window's sources (with the kernel's reach) must lie inside the frame, else ValueError.
    """
    h, w = frame.shape
    dy, dx = float(shift[0]), float(shift[1])
    iy, ix = int(np.floor(dy)), int(np.floor(dx))
    if top + iy - 1 < 0 or left + ix - 1 < 0 or top + iy + height + 2 > h or left + ix + width + 2 > w:
        raise ValueError(f"window {height}x{width} at ({top}, {left}) shifted by {shift} leaves the frame {h}x{w}")
    return _keys_window(frame, top, left, height, width, dy, dx)


def _keys_window(src: np.ndarray, top: int, left: int, height: int, width: int, dy: float, dx: float) -> np.ndarray:
    iy, ix = int(np.floor(dy)), int(np.floor(dx))
    roi = src[top + iy - 1:top + iy + height + 2, left + ix - 1:left + ix + width + 2]
    return cv2.sepFilter2D(roi, cv2.CV_32F, keys_weights(dx - ix), keys_weights(dy - iy), anchor=(0, 0),
                           borderType=cv2.BORDER_REPLICATE)[:height, :width]


def warp_rigid_fourier(frame: np.ndarray, shift, *, out: np.ndarray | None = None) -> np.ndarray:
    """Undo a rigid shift by a Fourier phase ramp (exact band-limited interpolation).

    Content that wraps around is replaced by the nearest valid row / column (``'copy'`` border).
    """
    h, w = frame.shape
    dy, dx = float(shift[0]), float(shift[1])
    ky = sfft.fftfreq(h)[:, None]
    kx = sfft.rfftfreq(w)[None, :]
    ramp = np.exp(2j * np.pi * (ky * dy + kx * dx)).astype(np.complex64)
    res = sfft.irfft2(sfft.rfft2(frame) * ramp, s=(h, w)).astype(np.float32, copy=False)
    rows = _nearest_valid(h, dy)
    cols = _nearest_valid(w, dx)
    res = res[rows[:, None], cols[None, :]]
    if out is None:
        return np.ascontiguousarray(res, dtype=np.float32)
    out[...] = res
    return out


def _nearest_valid(n: int, d: float) -> np.ndarray:
    """Index map replacing samples that fell outside ``[0, n-1]`` by the nearest inside one."""
    idx = np.arange(n)
    lo = int(np.ceil(-d - _EPS))  # first output index whose source is >= 0
    hi = int(np.floor(n - 1 - d + _EPS))  # last output index whose source is <= n-1
    lo, hi = max(0, min(lo, n - 1)), max(0, min(hi, n - 1))
    return np.clip(idx, lo, hi)


def _opencv_cubic_moment(t: np.ndarray) -> np.ndarray:
    """Effective (low-frequency) shift of OpenCV's bicubic kernel (a = -0.75) at fraction ``t``."""
    a = -0.75
    c0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    c1 = ((a + 2) * t - (a + 3)) * t * t + 1
    c2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
    c3 = 1 - c0 - c1 - c2
    return -c0 + c2 + 2 * c3


def _fraction_table() -> np.ndarray:
    """Lookup for OpenCV's fixed-point remap maps (5 fractional bits per axis): replaces each
    fraction by the one whose bicubic weights move smooth content by the intended amount."""
    bins = np.arange(_TAB) / _TAB
    achieved = _opencv_cubic_moment(bins)
    best = np.abs(achieved[None, :] - bins[:, None]).argmin(axis=1)
    return (best[:, None] * _TAB + best[None, :]).ravel().astype(np.uint16)


_TAB = 32  # OpenCV INTER_TAB_SIZE
_FRACTION_LUT = _fraction_table()


def warp_field(frame: np.ndarray, field: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Undo a dense displacement field with bicubic interpolation (``cv2.remap``).

    OpenCV's bicubic kernel (a = -0.75) does not move smooth content by the requested fraction
    (errors up to ~0.05 px); the fixed-point maps are corrected by a lookup so it does (to the
    1/32 px resolution of OpenCV's maps).

    Parameters
    ----------
    frame : ndarray, shape (H, W), float32
    field : ndarray, shape (2, H, W), float32
        ``(dy, dx)`` at every pixel (template coordinates), px. Overwritten with the sampling
        maps (``map_y``, ``map_x``).
    """
    h, w = frame.shape
    map_y = np.add(field[0], np.arange(h, dtype=np.float32)[:, None], out=field[0])
    map_x = np.add(field[1], np.arange(w, dtype=np.float32)[None, :], out=field[1])
    ipos, frac = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    frac = _FRACTION_LUT[frac]
    if out is None:
        return cv2.remap(frame, ipos, frac, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return cv2.remap(frame, ipos, frac, cv2.INTER_CUBIC, dst=out, borderMode=cv2.BORDER_REPLICATE)


def outside_rigid(shape: tuple[int, int], shift) -> tuple[slice, ...]:
    """Rows and columns of the corrected frame whose source lies outside the recorded frame.

    Returns slices ``(top, bottom, left, right)`` to overwrite (each possibly empty).
    """
    h, w = shape
    dy, dx = float(shift[0]), float(shift[1])
    top = max(0, min(h, int(np.ceil(-dy - _EPS))))
    bottom = max(0, min(h, int(np.floor(h - 1 - dy + _EPS)) + 1))
    left = max(0, min(w, int(np.ceil(-dx - _EPS))))
    right = max(0, min(w, int(np.floor(w - 1 - dx + _EPS)) + 1))
    return (np.s_[:top, :], np.s_[bottom:, :], np.s_[:, :left], np.s_[:, right:])


def fill_outside_rigid(frame: np.ndarray, shift, value: float) -> None:
    """Set pixels whose source was outside the frame to ``value`` (NaN or 0), in place."""
    for sl in outside_rigid(frame.shape, shift):
        frame[sl] = value


def fill_outside_maps(frame: np.ndarray, map_y: np.ndarray, map_x: np.ndarray, value: float) -> None:
    """Set pixels whose sampling position lies outside the frame to ``value``, in place."""
    h, w = frame.shape
    bad = (map_y < -_EPS) | (map_y > h - 1 + _EPS) | (map_x < -_EPS) | (map_x > w - 1 + _EPS)
    frame[bad] = value
