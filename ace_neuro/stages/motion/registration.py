"""Shift estimation by cross-correlation with a template, with sub-pixel peak interpolation.

Rigid: the untapered high-passed frame is cross-correlated by FFT (OpenCV's packed real DFT)
with the template, which is tapered to zero within ``max_shifts`` (+ the filter's reach) of the
frame edges: content entering or leaving the frame then never meets the template, so the peak
is not pulled towards zero shift. The peak is searched within ``max_shifts`` and located to
sub-pixel precision by a 2-D Gaussian fit of its 3 x 3 neighbourhood, whose remaining
systematic error (it depends on the template's autocorrelation) is removed by a calibration
computed exactly from the template spectrum (:class:`PeakCalibration`).

Piecewise-rigid: patches are cut from the frame at the template's patch positions moved by the
frame's (rounded) rigid shift, so each patch only has to be searched within
``max_deviation_rigid`` of the rigid shift; all patches of a frame are transformed in one batched
FFT against the tapered template patches' spectra (computed once). Each patch estimate comes
with its information matrix (how sharp the template patch's correlation peak is, along which
direction, and how well the frame patch matches); the per-patch deviations from the rigid
shift are then fused into a smooth field (:func:`fuse_patch_shifts`), so featureless patches
follow their neighbours instead of producing spurious shifts.
"""
from __future__ import annotations

import cv2
import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import as_strided

from .filters import HighPass
from .grid import PatchGrid


def peak_offset(c_minus: np.ndarray, c0: np.ndarray, c_plus: np.ndarray) -> np.ndarray:
    """Sub-pixel position of a peak from three samples at -1, 0, +1 (arrays broadcast).

    Fits a Gaussian (a parabola through the logarithms) where all three samples are positive,
    otherwise a parabola; returns 0 where neither is concave. Result is clipped to [-1, 1].
    """
    cm, c0, cp = (np.asarray(a, dtype=np.float64) for a in (c_minus, c0, c_plus))
    positive = (cm > 0) & (c0 > 0) & (cp > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lm, l0, lp = (np.log(np.where(positive, a, 1.0)) for a in (cm, c0, cp))
        curv_g = lm - 2.0 * l0 + lp
        off_g = 0.5 * (lm - lp) / curv_g
        curv_p = cm - 2.0 * c0 + cp
        off_p = 0.5 * (cm - cp) / curv_p
    off = np.where(positive & (curv_g < 0), off_g, np.where(curv_p < 0, off_p, 0.0))
    return np.clip(np.nan_to_num(off), -1.0, 1.0)


def taper_window(shape: tuple[int, int], margins: tuple[int, int], ramp: int = 8) -> np.ndarray:
    """Weights (H, W): 0 within ``margins`` px of the edges, raised-cosine ramp over ``ramp`` px, 1 inside.

    Correlating an untapered frame with a tapered template makes the correlation at every lag
    ``|s| <= margin`` an overlap-free function of ``s - d``: content entering the frame at its edges
    never meets the template, so the peak is not pulled towards zero shift. Margins and ramp are
    reduced on small frames so that at least the central third keeps full weight.
    """
    return np.outer(_taper_1d(shape[0], margins[0], ramp), _taper_1d(shape[1], margins[1], ramp)).astype(np.float32)


def _taper_1d(n: int, margin: int, ramp: int) -> np.ndarray:
    room = max(0, (n - max(1, n // 3)) // 2)  # px available on each side
    margin = min(int(margin), room)
    ramp = min(int(ramp), room - margin)
    w = np.ones(n)
    w[:margin] = 0.0
    w[n - margin:] = 0.0
    if ramp > 0:
        r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(1, ramp + 1)) / (ramp + 1))
        w[margin:margin + ramp] = r
        w[n - margin - ramp:n - margin] = r[::-1]
    return w


CALIBRATION_RELIABLE = 0.6  # px: sub-pixel calibration error up to which a template patch is trusted
CALIBRATION_UNRELIABLE = 1.0  # px: ... beyond which it is not used (weight falls linearly between)
SMOOTHNESS_PX = 1.0  # expected difference between neighbouring patches' deviations
PRIOR_PX = 2.0  # expected deviation of a patch from the rigid shift
FUSION_ITERATIONS = 12


def shift_information(ncc: np.ndarray, curvature: np.ndarray, window_area: np.ndarray,
                      template_weight: np.ndarray) -> np.ndarray:
    """Information (inverse covariance, 1/px^2) of each patch's shift estimate.

    The frame patch is ``ncc**2 / (1 - ncc**2)`` parts template to one part noise; the peak
    position is then known to within the peak's shape (``curvature``: the matrix ``A`` of
    ``R(u) ~ exp(-u' A u / 2)``, so a vessel constrains only the direction across it) divided
    by that signal-to-noise ratio and by the number of independent correlation cells in the
    window (``window_area * sqrt(det A) / (2 pi)``).

    Parameters
    ----------
    ncc : ndarray, shape (ny, nx)
        Normalised correlation peak of each frame patch with its template patch.
    curvature : ndarray, shape (ny, nx, 2, 2)
        Positive semi-definite peak curvature of each template patch (1/px^2).
    window_area : ndarray, shape (ny, nx)
        Sum of each template patch's taper weights (px).
    template_weight : ndarray, shape (ny, nx)
        Down-weighting of template patches whose sub-pixel calibration failed.

    Returns
    -------
    ndarray, shape (ny, nx, 2, 2)
    """
    ncc = np.clip(ncc, 0.0, 0.999)
    snr = ncc ** 2 / (1.0 - ncc ** 2)
    det = np.maximum(np.linalg.det(curvature), 0.0)
    n_cells = np.maximum(window_area * np.sqrt(det) / (2 * np.pi), 1.0)
    return (template_weight * snr * n_cells)[..., None, None] * curvature


def fuse_patch_shifts(deviation: np.ndarray, information: np.ndarray) -> np.ndarray:
    """Smooth field of patch deviations from the rigid shift, weighted by their information.

    Minimises ``sum_i (x_i - m_i)' J_i (x_i - m_i) + sum_{i~j} |x_i - x_j|^2 / SMOOTHNESS_PX^2
    + sum_i |x_i|^2 / PRIOR_PX^2`` over the 4-connected patch grid (Jacobi iterations): patches
    with clear structure keep their own estimate, featureless ones follow their neighbours (the
    rigid shift where no neighbour knows better), a patch crossed by one straight vessel keeps
    the component across the vessel.

    Parameters
    ----------
    deviation : ndarray, shape (ny, nx, 2)
        Measured ``patch shift - rigid shift``, px.
    information : ndarray, shape (ny, nx, 2, 2)
        From :func:`shift_information`.
    """
    lam = 1.0 / SMOOTHNESS_PX ** 2
    mu = 1.0 / PRIOR_PX ** 2
    ny, nx = deviation.shape[:2]
    count = np.zeros((ny, nx))
    count[1:] += 1
    count[:-1] += 1
    count[:, 1:] += 1
    count[:, :-1] += 1
    jm = np.einsum("...ij,...j->...i", information, deviation)
    diag = (lam * count + mu)[..., None, None] * np.eye(2)
    inv = np.linalg.inv(information + diag)
    x = np.einsum("...ij,...j->...i", inv, jm)
    for _ in range(FUSION_ITERATIONS):
        nb = np.zeros_like(x)
        nb[1:] += x[:-1]
        nb[:-1] += x[1:]
        nb[:, 1:] += x[:, :-1]
        nb[:, :-1] += x[:, 1:]
        x = np.einsum("...ij,...j->...i", inv, jm + lam * nb)
    return x


_NY, _NX = np.mgrid[-1:2, -1:2]
_QUADRATIC = np.linalg.pinv(np.stack(
    [np.ones(9), _NY.ravel(), _NX.ravel(), _NY.ravel() ** 2, _NX.ravel() ** 2, (_NY * _NX).ravel()], axis=1))


def peak_offset_2d(nb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel position of peaks from their 3 x 3 neighbourhoods, shape (..., 3, 3).

    Fits a 2-D Gaussian (a quadratic surface through the logarithms, by least squares) where all
    nine samples are positive, otherwise a quadratic surface; unlike fits along each axis, this
    follows peaks that are elongated along a diagonal. Falls back to :func:`peak_offset` along
    each axis where the surface is not concave. Offsets are clipped to [-1, 1].
    """
    nb = np.asarray(nb, dtype=np.float64)
    flat = nb.reshape(nb.shape[:-2] + (9,))
    positive = np.all(flat > 0, axis=-1, keepdims=True)
    vals = np.where(positive, np.log(np.where(flat > 0, flat, 1.0)), flat)
    coef = vals @ _QUADRATIC.T
    by, bx, h11, h22, h12 = coef[..., 1], coef[..., 2], 2 * coef[..., 3], 2 * coef[..., 4], coef[..., 5]
    det = h11 * h22 - h12 * h12
    concave = (h11 < 0) & (det > 1e-12)
    safe = np.where(concave, det, 1.0)
    fy = -(h22 * by - h12 * bx) / safe
    fx = -(h11 * bx - h12 * by) / safe
    sep_y = peak_offset(nb[..., 0, 1], nb[..., 1, 1], nb[..., 2, 1])
    sep_x = peak_offset(nb[..., 1, 0], nb[..., 1, 1], nb[..., 1, 2])
    fy = np.clip(np.where(concave, fy, sep_y), -1.0, 1.0)
    fx = np.clip(np.where(concave, fx, sep_x), -1.0, 1.0)
    return fy, fx


def _neighbourhood(a: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """``a[..., iy-1:iy+2, ix-1:ix+2]`` for per-element indices (batch shape of iy), (..., 3, 3)."""
    rows = (iy[..., None] + np.arange(-1, 2))[..., :, None]
    cols = (ix[..., None] + np.arange(-1, 2))[..., None, :]
    flat = a.reshape(a.shape[:-2] + (-1,))
    idx = (rows * a.shape[-1] + cols).reshape(iy.shape + (9,))
    return np.take_along_axis(flat, idx, axis=-1).reshape(iy.shape + (3, 3))


class PeakCalibration:
    """Removes the systematic error of the 3 x 3 sub-pixel peak fit, in 2-D.

    For a frame whose content is the template moved by ``r``, the cross-correlation with the
    tapered template is ``R(s - r)``, with ``R(u) = sum_y t(y + u) t(y) w(y)`` the template's
    autocorrelation against its tapered self. ``R`` is not exactly Gaussian nor symmetric (finite
    patch, taper), so the fitted peak (:func:`peak_offset_2d`) is off by a small amount that
    depends on the fractional part of ``r`` ("pixel locking") and on the template. ``R`` is evaluated exactly
    from the template spectrum on an 11 x 11 grid of fractional shifts, the estimator is run on
    it, and its error is tabulated (``max_error``: its largest value, a measure of how
    ill-defined the peak is; ``curvature``: the shape of ``R`` at its top, see
    :func:`_peak_curvature`); estimates are then corrected by solving
    ``estimate = r + error(r)`` (two fixed-point steps, bilinear table lookup). A table with an
    error above ``CALIBRATION_UNRELIABLE`` px (no usable peak) is replaced by zero error.

    Parameters
    ----------
    cross : ndarray, shape (..., Ny, Nx), complex
        ``fft2(t) * conj(fft2(t * w))`` for each template (patch).
    """

    N_DELTA = 11
    LAGS = np.arange(-2, 3)

    def __init__(self, cross: np.ndarray):
        ny, nx = cross.shape[-2:]
        nd, nl = self.N_DELTA, len(self.LAGS)
        deltas = np.linspace(-0.5, 0.5, nd)
        lags = (self.LAGS[:, None] - deltas[None, :]).ravel()  # index k * nd + j
        ey = np.exp(2j * np.pi * np.outer(lags, sfft.fftfreq(ny))).astype(np.complex64)
        ex = np.exp(2j * np.pi * np.outer(lags, sfft.fftfreq(nx))).astype(np.complex64)
        corr = (ey @ cross.astype(np.complex64) @ ex.T).real  # (..., nl*nd, nl*nd)
        batch = corr.shape[:-2]
        corr = corr.reshape(batch + (nl, nd, nl, nd))
        corr = np.moveaxis(corr, (-4, -3, -2, -1), (-2, -4, -1, -3))  # (..., dy, dx, ky, kx)
        inner = corr[..., 1:4, 1:4].reshape(batch + (nd, nd, 9))
        flat = np.argmax(inner, axis=-1)
        iy, ix = flat // 3 + 1, flat % 3 + 1

        fy, fx = peak_offset_2d(_neighbourhood(corr, iy, ix))
        est_y = self.LAGS[iy] + fy
        est_x = self.LAGS[ix] + fx
        err = np.stack([est_y - deltas[:, None], est_x - deltas[None, :]], axis=-1)  # (..., nd, nd, 2)
        self.max_error = np.abs(err).reshape(batch + (-1,)).max(axis=-1)
        self.curvature = _peak_curvature(corr[..., nd // 2, nd // 2, :, :])
        err[self.max_error > CALIBRATION_UNRELIABLE] = 0.0
        self._err = err.reshape(batch + (nd * nd, 2))

    def _error(self, dy: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nd = self.N_DELTA
        uy = np.clip((dy + 0.5) * (nd - 1), 0, nd - 1)
        ux = np.clip((dx + 0.5) * (nd - 1), 0, nd - 1)
        y0 = np.minimum(np.floor(uy).astype(np.int64), nd - 2)
        x0 = np.minimum(np.floor(ux).astype(np.int64), nd - 2)
        wy, wx = (uy - y0)[..., None], (ux - x0)[..., None]

        def g(yi, xi):
            return np.take_along_axis(self._err, (yi * nd + xi)[..., None, None], axis=-2)[..., 0, :]

        e = ((1 - wy) * ((1 - wx) * g(y0, x0) + wx * g(y0, x0 + 1))
             + wy * ((1 - wx) * g(y0 + 1, x0) + wx * g(y0 + 1, x0 + 1)))
        return e[..., 0], e[..., 1]

    def __call__(self, est_y, est_x) -> tuple[np.ndarray, np.ndarray]:
        """Corrected shifts for raw estimates (lag units; arrays shaped like the table batch)."""
        est_y = np.asarray(est_y, dtype=np.float64)
        est_x = np.asarray(est_x, dtype=np.float64)
        ny, nx = np.rint(est_y), np.rint(est_x)
        ry, rx = est_y, est_x
        for _ in range(2):
            ey, ex = self._error(ry - ny, rx - nx)
            ry, rx = est_y - ey, est_x - ex
        return ry, rx


def _peak_curvature(r: np.ndarray) -> np.ndarray:
    """Curvature matrix (1/px^2) at the top of correlation peaks.

    ``r`` holds the correlation at integer lags -2..2 on both axes (shape (..., 5, 5), peak at
    the centre). With ``R(u) ~ R(0) exp(-u' A u / 2)`` near the top, ``A`` is estimated from
    second differences and made positive semi-definite. A ridge (a straight vessel: no
    information along it) has one eigenvalue near zero, a flat patch two.
    """
    r0 = r[..., 2, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ayy = (2 * r0 - r[..., 1, 2] - r[..., 3, 2]) / r0
        axx = (2 * r0 - r[..., 2, 1] - r[..., 2, 3]) / r0
        axy = -(r[..., 3, 3] - r[..., 3, 1] - r[..., 1, 3] + r[..., 1, 1]) / (4 * r0)
    a = np.stack([np.stack([ayy, axy], -1), np.stack([axy, axx], -1)], -2)
    a = np.where(np.isfinite(a) & (r0 > 0)[..., None, None], a, 0.0)
    vals, vecs = np.linalg.eigh(a)
    return np.einsum("...ik,...k,...jk->...ij", vecs, np.maximum(vals, 0.0), vecs)


def _cross_spectrum(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``fft2(image) * conj(fft2(image * weights))`` over the last two axes."""
    img = np.asarray(image, dtype=np.float64)
    return sfft.fft2(img) * np.conj(sfft.fft2(img * weights))


class RigidRegistrar:
    """Estimates the rigid shift of frames against a fixed high-passed template.

    The template is tapered (:func:`taper_window`) and its spectrum multiplied by the high-pass
    kernel's once, so a frame's shift costs one forward DFT of the unfiltered frame (shared
    with the high-pass), one product and one inverse DFT.

    Parameters
    ----------
    template : ndarray, shape (H, W), float32
        High-passed template.
    max_shifts : (int, int)
        Largest ``|dy|``, ``|dx|`` searched, px.
    highpass : HighPass
        The filter (and DFT size) used for frames.
    """

    def __init__(self, template: np.ndarray, max_shifts: tuple[int, int], highpass: HighPass):
        self.shape = tuple(int(s) for s in template.shape)
        self.highpass = highpass
        self.fft_shape = highpass.fft_shape
        self.max_shifts = (int(max_shifts[0]), int(max_shifts[1]))
        my, mx = self.max_shifts
        ey, ex = highpass.edge
        self.window = taper_window(self.shape, (my + 1 + ey, mx + 1 + ex))
        tapered = np.zeros(self.fft_shape, np.float32)
        tapered[:self.shape[0], :self.shape[1]] = np.asarray(template, dtype=np.float32) * self.window
        self._spectrum = cv2.mulSpectrums(highpass.kernel_spectrum, cv2.dft(tapered), 0, conjB=True)
        self.calibration = PeakCalibration(_cross_spectrum(template, self.window))
        self._rows = np.arange(-my - 1, my + 2) % self.fft_shape[0]
        self._cols = np.arange(-mx - 1, mx + 2) % self.fft_shape[1]

    def correlation_window(self, spectrum: np.ndarray) -> np.ndarray:
        """Cross-correlation at lags ``-max_shifts-1 .. max_shifts+1``, shape (2my+3, 2mx+3).

        ``spectrum`` is the unfiltered frame's :meth:`HighPass.spectrum`.
        """
        cross = cv2.mulSpectrums(spectrum, self._spectrum, 0)
        cc = cv2.dft(cross, flags=cv2.DFT_INVERSE | cv2.DFT_REAL_OUTPUT)
        return cc[np.ix_(self._rows, self._cols)]

    def shift(self, spectrum: np.ndarray) -> np.ndarray:
        """Rigid ``(dy, dx)`` displacement of the frame's content vs the template, px (float64).

        ``spectrum`` is the unfiltered frame's :meth:`HighPass.spectrum`.
        """
        win = self.correlation_window(spectrum)
        inner = win[1:-1, 1:-1]
        iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
        iy, ix = iy + 1, ix + 1
        fy, fx = peak_offset_2d(win[iy - 1:iy + 2, ix - 1:ix + 2])
        my, mx = self.max_shifts
        ry, rx = self.calibration(iy - (my + 1) + fy, ix - (mx + 1) + fx)
        return np.array([float(np.clip(ry, -my, my)), float(np.clip(rx, -mx, mx))])


class PatchRegistrar:
    """Estimates per-patch shifts within ``max_deviation`` px of a frame's rigid shift.

    Parameters
    ----------
    template : ndarray, shape (H, W), float32
        High-passed template.
    grid : PatchGrid
        Patch layout.
    max_shifts : (int, int)
        Bound of the rigid shift (px); frames are zero-padded by this much so shifted patches
        always lie inside.
    max_deviation : int
        Largest deviation of a patch shift from the rigid shift, px.
    """

    def __init__(self, template: np.ndarray, grid: PatchGrid, max_shifts: tuple[int, int],
                 max_deviation: int):
        self.grid = grid
        self.max_deviation = int(max_deviation)
        self.margin = (int(max_shifts[0]) + 1, int(max_shifts[1]) + 1)
        h, w = grid.frame_shape
        self.padded_shape = (h + 2 * self.margin[0], w + 2 * self.margin[1])
        tpad = self.new_buffer()
        tpad[self.margin[0]:self.margin[0] + h, self.margin[1]:self.margin[1] + w] = template
        taper = taper_window(grid.size, (self.max_deviation + 2, self.max_deviation + 2), ramp=4)
        self.window = np.ascontiguousarray(np.broadcast_to(taper, grid.n_patches + tuple(grid.size)))
        tpatches = self._patches(tpad, 0, 0)
        self._tconj = np.conj(sfft.rfft2(tpatches * self.window))
        self._t_energy = np.einsum("abyx,abyx->ab", tpatches * tpatches, self.window)
        self.calibration = PeakCalibration(_cross_spectrum(tpatches, self.window))
        err = self.calibration.max_error
        self.template_weight = np.clip((CALIBRATION_UNRELIABLE - err)
                                       / (CALIBRATION_UNRELIABLE - CALIBRATION_RELIABLE), 0.0, 1.0)
        self._window_area = self.window.sum(axis=(2, 3))
        lag = self.max_deviation + 1
        self._lags = np.arange(-lag, lag + 1)
        py, px = grid.size
        self._rows = self._lags % py
        self._cols = self._lags % px

    def new_buffer(self) -> np.ndarray:
        """A zeroed padded frame buffer (one per worker thread)."""
        return np.zeros(self.padded_shape, dtype=np.float32)

    def _patches(self, padded: np.ndarray, oy: int, ox: int) -> np.ndarray:
        g = self.grid
        sy, sx = g.step
        base = padded[self.margin[0] + oy + int(g.starts_y[0]):, self.margin[1] + ox + int(g.starts_x[0]):]
        rs, cs = padded.strides
        ny, nx = g.n_patches
        return as_strided(base, shape=(ny, nx) + tuple(g.size), strides=(sy * rs, sx * cs, rs, cs),
                          writeable=False)

    def shifts(self, frame_hp: np.ndarray, rigid: np.ndarray, buffer: np.ndarray, *,
               reference: np.ndarray | None = None) -> np.ndarray:
        """Per-patch ``(dy, dx)`` in px, shape (ny, nx, 2), within ``max_deviation`` of ``rigid``.

        ``buffer`` is a worker's padded buffer from :meth:`new_buffer` (its border stays zero).
        Deviations are measured from ``reference`` (default ``rigid``), the whole-frame estimate
        made the same way as the patch estimates, and applied to ``rigid``.
        """
        reference = rigid if reference is None else np.asarray(reference, dtype=np.float64)
        ny, nx = self.grid.n_patches
        max_dev = self.max_deviation
        rigid = np.asarray(rigid, dtype=np.float64)
        if max_dev == 0:
            return np.broadcast_to(rigid, (ny, nx, 2)).astype(np.float32)
        h, w = self.grid.frame_shape
        buffer[self.margin[0]:self.margin[0] + h, self.margin[1]:self.margin[1] + w] = frame_hp
        oy, ox = (int(np.clip(np.rint(r), -m + 1, m - 1)) for r, m in zip(rigid, self.margin))
        fpatches = self._patches(buffer, oy, ox)
        spec = sfft.rfft2(fpatches)
        spec *= self._tconj
        f_energy = np.einsum("abyx,abyx->ab", fpatches * fpatches, self.window)
        cc = sfft.irfft2(spec, s=self.grid.size)
        win = cc[:, :, self._rows[:, None], self._cols[None, :]]  # (ny, nx, 2L+1, 2L+1)
        ry, rx = rigid[0] - oy, rigid[1] - ox
        allowed = ((np.abs(self._lags - ry) <= max_dev + 1e-9)[:, None]
                   & (np.abs(self._lags - rx) <= max_dev + 1e-9)[None, :])
        masked = np.where(allowed, win, -np.inf).reshape(ny, nx, -1)
        flat = np.argmax(masked, axis=-1)
        iy, ix = np.unravel_index(flat, win.shape[2:])
        iy = np.clip(iy, 1, win.shape[2] - 2)
        ix = np.clip(ix, 1, win.shape[3] - 2)
        nb = _neighbourhood(win, iy, ix)
        c0 = nb[..., 1, 1]
        fy, fx = peak_offset_2d(nb)
        ry, rx = self.calibration(self._lags[iy] + fy, self._lags[ix] + fx)
        measured = np.empty((ny, nx, 2), dtype=np.float64)
        measured[..., 0] = oy + ry
        measured[..., 1] = ox + rx
        np.clip(measured, rigid - max_dev, rigid + max_dev, out=measured)
        with np.errstate(divide="ignore", invalid="ignore"):
            ncc = np.nan_to_num(c0 / np.sqrt(f_energy * self._t_energy))
        info = shift_information(ncc, self.calibration.curvature, self._window_area, self.template_weight)
        deviation = fuse_patch_shifts(measured - reference, info)
        return np.clip(rigid + deviation, rigid - max_dev, rigid + max_dev).astype(np.float32)
