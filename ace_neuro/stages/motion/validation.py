"""Up-front checks of motion-correction parameters against the movie they will be applied to."""
from __future__ import annotations

import numpy as np

from ...errors import ParameterError, RawDataError
from ...params import MotionParams

BORDER_MODES = ("copy", "nan", "zero")


class MotionCorrectionError(RawDataError):
    """Motion correction cannot run on this movie as given; the message says how to fix it."""


class MotionParameterError(ParameterError, MotionCorrectionError):
    """A motion-correction parameter that does not fit this movie (``parameter`` names it)."""


def patch_size(params: MotionParams) -> tuple[int, int]:
    """Side of the piecewise-rigid patches, ``strides + overlaps`` (rows, columns) in px."""
    return (int(params.strides[0]) + int(params.overlaps[0]),
            int(params.strides[1]) + int(params.overlaps[1]))


def check_frames(frames) -> tuple[int, int, int]:
    """Check that ``frames`` is a (T, H, W) real-valued movie; return its shape."""
    shape = getattr(frames, "shape", None)
    if shape is None or len(shape) != 3:
        raise MotionCorrectionError(
            f"frames must be a (frame, height, width) array, got shape {shape!r}")
    dtype = np.dtype(getattr(frames, "dtype", np.float32))
    if dtype.kind not in "uif":
        raise MotionCorrectionError(
            f"frames must hold integers or floats (uint8, uint16, float32 ...), got dtype {dtype}")
    t, h, w = (int(s) for s in shape)
    if t < 1 or h < 8 or w < 8:
        raise MotionCorrectionError(
            f"frames of shape {tuple(shape)} are too small: need at least 1 frame of 8 x 8 px")
    return t, h, w


def check_motion_params(params: MotionParams, frame_shape: tuple[int, int]) -> None:
    """Raise :class:`MotionParameterError` if ``params`` cannot be used on frames of ``frame_shape`` (H, W) px.

    Each value's own range is checked where it is declared (:class:`~ace_neuro.params.MotionParams`);
    this checks what depends on the frame size.
    """
    h, w = (int(s) for s in frame_shape)
    size = f"the frame is {h} x {w} px (height x width)"
    for axis, (m, d) in enumerate(zip(params.max_shifts, (h, w))):
        if 2 * m + 4 > d:
            raise MotionParameterError(
                f"max_shifts = {params.max_shifts!r} is too large: {size}, so the shift along "
                f"{'y' if axis == 0 else 'x'} must be at most {(d - 4) // 2} px. Reduce max_shifts.",
                parameter="max_shifts")
    if params.gSig_filt is not None:
        k = tuple(highpass_kernel_size(gi) for gi in params.gSig_filt)
        if k[0] > h or k[1] > w:
            raise MotionParameterError(
                f"gSig_filt = {params.gSig_filt!r} needs a {k[0]} x {k[1]} px filter but {size}. "
                f"Reduce gSig_filt.", parameter="gSig_filt")
    if not params.pw_rigid:
        return
    p = patch_size(params)
    if p[0] > h or p[1] > w:
        raise MotionParameterError(
            f"strides + overlaps = {p[0]} x {p[1]} px (one patch) is larger than the frame: {size}. "
            f"Reduce strides/overlaps or use pw_rigid = FALSE.", parameter="strides")
    dev = int(params.max_deviation_rigid)
    if 2 * (dev + 2) >= min(p):
        raise MotionParameterError(
            f"max_deviation_rigid = {dev} px is too large for patches of {p[0]} x {p[1]} px "
            f"(strides + overlaps): it must be below {min(p) // 2 - 2} px. Reduce max_deviation_rigid "
            f"or enlarge strides/overlaps.", parameter="max_deviation_rigid")


def highpass_kernel_size(gsig: int) -> int:
    """Odd kernel side used for a high-pass of scale ``gsig`` px (CaImAn's choice, 3*gSig rounded to odd)."""
    return (3 * int(gsig)) // 2 * 2 + 1
