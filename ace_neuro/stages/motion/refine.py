"""Robust sub-pixel refinement of a rigid shift (iteratively reweighted Gauss-Newton).

The cross-correlation peak treats every pixel alike. In 1-photon recordings that is biased: a
neuron that fires for a second adds a bright blob that the template (an average over the
recording) holds only faintly, and the correlation peak leans towards where that blob best
overlaps the template's structure - a neighbouring cell, a vessel edge. The error follows the
activity, so it is slow, and averaging over frames does not remove it.

The refinement starts from the correlation estimate and minimises a robust misfit between the
aligned high-passed frame and the template over the interior (``max_shifts`` and the filter's
reach excluded)::

    s = argmin sum_x rho( frame(x + s) - template(x) )

with Tukey's biweight ``rho`` (tuning constant 4.685 x the robust noise level, the usual 95 %
efficiency choice): pixels whose residual is far beyond the frame's noise - a transient - get no
weight, so the shift is set by what stays put. Each iteration warps the frame with the same Keys
cubic interpolation the correction uses, takes the template's gradient as the Jacobian (its
fixed point does not depend on how exact the gradient is), and solves a 2 x 2 system.
"""
from __future__ import annotations

import numpy as np

from .warp import sample_rigid_window

TUKEY_C = 4.685
N_ITER = 2
MAX_STEP_PX = 1.5  # a fit moving further than this from the peak has failed: keep the peak
MIN_INTERIOR_PX = 16  # rows / columns the misfit needs inside the margins
_CONVERGED_PX = 1e-3
_MAD_TO_SIGMA = 1.4826


class RobustShiftRefiner:
    """Refines rigid shifts of high-passed frames against one high-passed template.

    Parameters
    ----------
    template : ndarray, shape (H, W), float32
        High-passed template.
    margins : (int, int)
        Rows / columns at each edge left out of the misfit (``max_shifts`` + filter reach).
    n_iter : int, optional
        Reweighting iterations.
    """

    def __init__(self, template: np.ndarray, margins: tuple[int, int], *, n_iter: int = N_ITER):
        h, w = template.shape
        my, mx = max(int(margins[0]), 1), max(int(margins[1]), 1)
        # too little frame left inside the margins to fit against: keep the correlation peak
        self.enabled = min(h - 2 * my, w - 2 * mx) >= MIN_INTERIOR_PX
        my, mx = min(my, (h - 1) // 2), min(mx, (w - 1) // 2)
        self.interior = (slice(my, h - my), slice(mx, w - mx))
        self._window = (my, mx, h - 2 * my, w - 2 * mx)
        t = np.asarray(template, dtype=np.float32)
        gy, gx = np.gradient(t)
        self._t = np.ascontiguousarray(t[self.interior])
        self._gy = np.ascontiguousarray(gy[self.interior])
        self._gx = np.ascontiguousarray(gx[self.interior])
        self.n_iter = int(n_iter)
        # every 3rd pixel each way is plenty for the noise level, at 1/9 of the cost
        self._noise_sample = (slice(None, None, 3), slice(None, None, 3))

    def __call__(self, frame_hp: np.ndarray, shift) -> np.ndarray:
        """Refined ``(dy, dx)`` (float64) of one high-passed frame, starting from ``shift``."""
        start = np.asarray(shift, dtype=np.float64)
        s = start.copy()
        if not self.enabled:
            return s
        noise = None
        for _ in range(self.n_iter):
            step, noise = self._step(frame_hp, s, noise)
            if step is None:
                break
            s -= step
            if np.hypot(*step) < _CONVERGED_PX:
                break
        # the peak is right to well within a pixel: a fit that wanders further has failed
        return s if np.hypot(*(s - start)) <= MAX_STEP_PX else start

    def _step(self, frame_hp: np.ndarray, s: np.ndarray,
              noise: float | None) -> tuple[np.ndarray | None, float | None]:
        """One reweighted Gauss-Newton step and the residual noise level (measured once per frame)."""
        try:
            aligned = sample_rigid_window(frame_hp, s, *self._window)
        except ValueError:  # the shift reached the margin: nothing to refine against
            return None, noise
        r = aligned - self._t
        if noise is None:
            noise = _MAD_TO_SIGMA * float(np.median(np.abs(r[self._noise_sample])))
        if not noise > 0:
            return None, noise
        u = r * np.float32(1.0 / (TUKEY_C * noise))
        w = np.maximum(np.float32(1.0) - u * u, np.float32(0.0))
        w *= w
        wgy, wgx = w * self._gy, w * self._gx
        # einsum, not BLAS: no thread-pool stalls when called from many worker threads
        a = np.array([[_dot(wgy, self._gy), _dot(wgy, self._gx)],
                      [_dot(wgx, self._gy), _dot(wgx, self._gx)]], dtype=np.float64)
        b = np.array([_dot(wgy, r), _dot(wgx, r)], dtype=np.float64)
        det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        if not det > 1e-12 * max(a[0, 0] * a[1, 1], 1e-30):
            return None, noise
        step = np.array([a[1, 1] * b[0] - a[0, 1] * b[1], a[0, 0] * b[1] - a[1, 0] * b[0]]) / det
        if not np.all(np.isfinite(step)) or np.hypot(*step) > MAX_STEP_PX:
            return None, noise
        return step, noise


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.einsum("ij,ij->", a, b))
