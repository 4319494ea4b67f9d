"""Per-frame work against one template: estimate shifts, warp once, measure quality.

An :class:`Aligner` holds everything derived from the template (spectra, patch grid, correlation
weights) and is shared read-only by worker threads; each thread owns a :class:`Workspace` of
scratch buffers. OpenCV, NumPy and SciPy's FFT release the GIL, so threads over frames use all
cores.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from ...params import MotionParams
from .filters import HighPass
from .grid import PatchGrid, make_patch_grid
from .refine import RobustShiftRefiner
from .registration import PatchRegistrar, RigidRegistrar
from .warp import (fill_outside_maps, fill_outside_rigid, warp_field, warp_rigid,
                   warp_rigid_fourier)

log = logging.getLogger(__name__)

BORDER_VALUES = {"nan": np.nan, "zero": 0.0}


@dataclass
class Workspace:
    """Scratch buffers owned by one worker thread."""

    hp: np.ndarray
    hp_after: np.ndarray
    padded: np.ndarray | None
    sum_before: np.ndarray
    sum_after: np.ndarray
    n_nonfinite: int = 0


@dataclass
class FrameResult:
    """What :meth:`Aligner.correct` measured on one frame (see ``MotionResult`` for meanings)."""

    rigid: np.ndarray
    patches: np.ndarray | None
    corr_before: float
    corr_after: float
    residual: float


class TemplateCorrelation:
    """Pearson correlation of a frame with the template over the interior (``max_shifts`` margin)."""

    def __init__(self, template: np.ndarray, margins: tuple[int, int]):
        h, w = template.shape
        my = min(int(margins[0]), (h - 1) // 2)
        mx = min(int(margins[1]), (w - 1) // 2)
        weight = np.zeros((h, w), dtype=np.float32)
        weight[my:h - my, mx:w - mx] = 1.0
        self._n = float(weight.sum())
        centred = (template - template[my:h - my, mx:w - mx].mean()) * weight
        norm = float(np.linalg.norm(centred))
        self._t = (centred / norm if norm > 0 else centred).astype(np.float32).ravel()
        self._w = weight.ravel()

    def __call__(self, img: np.ndarray) -> float:
        flat = img.ravel()  # einsum, not BLAS: no thread pool stalls when called from many threads
        s1 = float(np.einsum("i,i->", flat, self._w))
        s2 = float(np.einsum("i,i,i->", flat, flat, self._w))
        var = s2 - s1 * s1 / self._n
        return float(np.einsum("i,i->", flat, self._t)) / np.sqrt(var) if var > 0 else 0.0


class Aligner:
    """Registers frames to a fixed high-passed template and applies the shifts.

    Parameters
    ----------
    template : ndarray, shape (H, W), float32
        High-passed template (see :func:`~ace_neuro.stages.motion.estimate_template`).
    params : MotionParams
        Validated parameters.
    pw_rigid : bool, optional
        Overrides ``params.pw_rigid`` (template refinement uses rigid passes first).
    """

    def __init__(self, template: np.ndarray, params: MotionParams, *, pw_rigid: bool | None = None):
        self.params = params
        self.template = np.ascontiguousarray(template, dtype=np.float32)
        self.shape = self.template.shape
        self.pw_rigid = params.pw_rigid if pw_rigid is None else bool(pw_rigid)
        self.highpass = HighPass(self.shape, params.gSig_filt)
        self.rigid = RigidRegistrar(self.template, params.max_shifts, self.highpass)
        self.refiner = RobustShiftRefiner(
            self.template, tuple(int(m) + 1 + e for m, e in zip(params.max_shifts, self.highpass.edge)))
        self.grid: PatchGrid | None = None
        self.patches: PatchRegistrar | None = None
        if self.pw_rigid:
            self.grid = make_patch_grid(self.shape, params)
            self.patches = PatchRegistrar(self.template, self.grid, params.max_shifts,
                                          params.max_deviation_rigid)
        self.correlation = TemplateCorrelation(
            self.template, tuple(max(int(m), e) for m, e in zip(params.max_shifts, self.highpass.edge)))
        self.border_value = BORDER_VALUES.get(params.border_nan)
        self.fourier = (not params.shifts_opencv) and not self.pw_rigid

    def new_workspace(self) -> Workspace:
        h, w = self.shape
        return Workspace(
            hp=np.empty((h, w), np.float32), hp_after=np.empty((h, w), np.float32),
            padded=self.patches.new_buffer() if self.patches is not None else None,
            sum_before=np.zeros((h, w), np.float64), sum_after=np.zeros((h, w), np.float64))

    def estimate(self, spectrum: np.ndarray, frame_hp: np.ndarray,
                 ws: Workspace) -> tuple[np.ndarray, np.ndarray | None]:
        """Rigid ``(dy, dx)`` and, when piecewise-rigid, per-patch shifts (ny, nx, 2).

        ``spectrum`` is the unfiltered frame's DFT, ``frame_hp`` its high-passed copy.
        """
        my, mx = self.rigid.max_shifts
        peak = self.rigid.shift(spectrum)
        rigid = self.refiner(frame_hp, peak)
        rigid = np.array([np.clip(rigid[0], -my, my), np.clip(rigid[1], -mx, mx)])
        patches = None
        if self.patches is not None:
            # patch peaks share the whole-frame peak's bias (a firing neuron pulls both): their
            # deviations are taken from the frame's peak and added to the refined shift
            patches = self.patches.shifts(frame_hp, rigid, ws.padded, reference=peak)
        return rigid, patches

    def warp(self, frame: np.ndarray, rigid: np.ndarray, patches: np.ndarray | None,
             out: np.ndarray) -> np.ndarray | None:
        """Warp ``frame`` into ``out`` (borders copied). Returns the sampling maps (2, H, W) if any."""
        if patches is not None:
            maps = self.grid.field(patches)
            warp_field(frame, maps, out=out)
            return maps
        if self.fourier:
            warp_rigid_fourier(frame, rigid, out=out)
        else:
            warp_rigid(frame, rigid, out=out)
        return None

    def fill_border(self, frame: np.ndarray, rigid: np.ndarray, maps: np.ndarray | None,
                    value: float) -> None:
        """Overwrite pixels whose source lay outside the frame with ``value``."""
        if maps is not None:
            fill_outside_maps(frame, maps[0], maps[1], value)
        else:
            fill_outside_rigid(frame, rigid, value)

    def correct(self, raw: np.ndarray, out: np.ndarray, ws: Workspace) -> FrameResult:
        """Full per-frame pass: estimate on the high-passed copy, warp the raw frame, check.

        Parameters
        ----------
        raw : ndarray, shape (H, W)
            One input frame (any real dtype).
        out : ndarray, shape (H, W), float32
            Receives the corrected frame.
        """
        frame, replaced = _finite_float32(raw)
        ws.n_nonfinite += replaced
        spectrum = self.highpass.spectrum(frame)
        hp = self.highpass.from_spectrum(spectrum, ws.hp)
        corr_before = self.correlation(hp)
        rigid, patches = self.estimate(spectrum, hp, ws)
        maps = self.warp(frame, rigid, patches, out)
        spectrum_after = self.highpass.spectrum(out)
        corr_after = self.correlation(self.highpass.from_spectrum(spectrum_after, ws.hp_after))
        residual = float(np.hypot(*self.rigid.shift(spectrum_after)))
        cv2.accumulate(frame, ws.sum_before)
        cv2.accumulate(out, ws.sum_after)
        if self.border_value is not None:
            self.fill_border(out, rigid, maps, self.border_value)
        return FrameResult(rigid, patches, corr_before, corr_after, residual)

    def shifts_of(self, raw: np.ndarray, ws: Workspace) -> tuple[np.ndarray, np.ndarray | None]:
        """Shifts of one raw frame (used while building the template)."""
        spectrum = self.highpass.spectrum(_finite_float32(raw)[0])
        return self.estimate(spectrum, self.highpass.from_spectrum(spectrum, ws.hp), ws)

    def aligned_highpass(self, raw: np.ndarray, rigid: np.ndarray, patches: np.ndarray | None,
                         ws: Workspace, out: np.ndarray, valid: np.ndarray) -> None:
        """Aligned high-passed copy of one frame into ``out`` (zeros where the frame has no data)
        and its coverage (1 inside, 0 outside) into ``valid``; used while building the template."""
        hp = self.highpass(_finite_float32(raw)[0], ws.hp)
        maps = self.warp(hp, rigid, patches, out)
        valid[...] = 1.0
        self.fill_border(out, rigid, maps, 0.0)
        self.fill_border(valid, rigid, maps, 0.0)


def _finite_float32(raw: np.ndarray) -> tuple[np.ndarray, bool]:
    """The frame as float32; non-finite pixels (float input only) replaced by the finite mean."""
    frame = np.asarray(raw, dtype=np.float32)
    if raw.dtype.kind == "f" and not np.isfinite(frame.sum()):
        good = np.isfinite(frame)
        fill = float(frame[good].mean()) if good.any() else 0.0
        return np.where(good, frame, np.float32(fill)), True
    return frame, False
