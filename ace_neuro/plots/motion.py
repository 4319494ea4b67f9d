"""Quality figures of motion correction (headless): shifts, mean projections, template correlation."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ace_neuro.plots.common import new_figure
from ace_neuro.stages.motion import MotionResult


def _time_axis(n: int, times) -> tuple[np.ndarray, str]:
    if times is None:
        return np.arange(n, dtype=np.float64), "frame"
    t = np.asarray(times, dtype=np.float64)
    if t.shape != (n,):
        raise ValueError(f"times has shape {t.shape}, expected ({n},) (one per frame)")
    return t, "time (s)"


def plot_shifts(result: MotionResult, times=None) -> Figure:
    """Rigid shifts over time, the spread of the patch shifts, and the residual shift.

    Parameters
    ----------
    result : MotionResult
    times : ndarray, shape (T,), optional
        Frame times in s (default: frame index).

    Returns
    -------
    Figure
        Top: rigid dy and dx (px) with the 5-95 % range over patches shaded (piecewise-rigid).
        Bottom: residual shift re-estimated on the corrected frames (px).
    """
    t, label = _time_axis(result.n_frames, times)
    fig = new_figure(8.0, 4.5)
    ax_s, ax_r = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    for axis, (name, color) in enumerate((("dy", "tab:blue"), ("dx", "tab:orange"))):
        if result.patch_shifts is not None:
            flat = result.patch_shifts[..., axis].reshape(result.n_frames, -1)
            lo, hi = np.percentile(flat, [5, 95], axis=1)
            ax_s.fill_between(t, lo, hi, color=color, alpha=0.25, lw=0, label=f"{name} patches 5-95 %")
        ax_s.plot(t, result.rigid_shifts[:, axis], color=color, lw=0.8, label=f"{name} rigid")
    ax_s.axhline(0, color="0.6", lw=0.5)
    ax_s.set_ylabel("shift (px)")
    ax_s.legend(fontsize=7, ncol=2, loc="upper right")
    kind = "piecewise-rigid" if result.patch_shifts is not None else "rigid"
    ax_s.set_title(f"Motion ({kind}): content displacement vs template")
    ax_r.plot(t, result.residual_shift, color="0.25", lw=0.7)
    ax_r.set_ylabel("residual (px)")
    ax_r.set_xlabel(label)
    ax_r.set_ylim(bottom=0)
    return fig


def plot_before_after(mean_before: np.ndarray, mean_after: np.ndarray, *,
                      title: str = "Mean projection") -> Figure:
    """Mean projections before and after correction, side by side on one colour scale.

    Parameters
    ----------
    mean_before, mean_after : ndarray, shape (H, W)
        e.g. ``MotionResult.mean_before`` / ``mean_after``.
    """
    before = np.asarray(mean_before, dtype=np.float64)
    after = np.asarray(mean_after, dtype=np.float64)
    if before.ndim != 2 or before.shape != after.shape:
        raise ValueError(f"mean projections must be two images of one shape, got {before.shape} and {after.shape}")
    finite = np.concatenate([before[np.isfinite(before)], after[np.isfinite(after)]])
    lo, hi = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
    fig = new_figure(8.0, 4.2)
    axes = fig.subplots(1, 2)
    for ax, img, name in zip(axes, (before, after), ("before", "after")):
        im = ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{title} {name}")
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, shrink=0.7, label="counts")
    return fig


def plot_template_correlation(result: MotionResult, times=None) -> Figure:
    """The (high-passed) template and each frame's correlation with it before and after.

    Parameters
    ----------
    result : MotionResult
    times : ndarray, shape (T,), optional
        Frame times in s (default: frame index).
    """
    t, label = _time_axis(result.n_frames, times)
    fig = new_figure(9.0, 3.6)
    ax_t, ax_c = fig.subplots(1, 2, width_ratios=(1, 2))
    tpl = result.template
    v = float(np.percentile(np.abs(tpl), 99.5)) or 1.0
    ax_t.imshow(tpl, cmap="gray", vmin=-v, vmax=v, interpolation="nearest")
    ax_t.set_title("template (high-passed)")
    ax_t.set_axis_off()
    ax_c.plot(t, result.corr_before, lw=0.7, color="tab:red",
              label=f"before (median {np.median(result.corr_before):.3f})")
    ax_c.plot(t, result.corr_after, lw=0.7, color="tab:green",
              label=f"after (median {np.median(result.corr_after):.3f})")
    ax_c.set_ylim(min(0.0, float(np.min(result.corr_before))), 1.0)
    ax_c.set_xlabel(label)
    ax_c.set_ylabel("correlation with template")
    ax_c.legend(fontsize=7, loc="lower right")
    return fig


__all__ = ["plot_before_after", "plot_shifts", "plot_template_correlation"]
