"""Motion correction, native engine (NoRMCorre-style).

Rigid and piecewise-rigid registration of 1-photon miniscope movies. Shifts are estimated on a
high-passed copy (``gSig_filt``) against a template refined from the data, and applied once per
frame to the unfiltered movie, streaming block by block.

Sign convention: a shift ``(dy, dx)`` is the displacement of the content,
``observed(y, x) = template(y - dy, x - dx)``; correction moves it back.
"""
from .filters import highpass_filter
from .grid import PatchGrid, make_patch_grid
from .pipeline import (ENGINE, MotionResult, correct_motion, correct_motion_in_memory,
                       motion_result_from_arrays, shift_field)
from .template import estimate_template
from .validation import MotionCorrectionError, MotionParameterError, check_motion_params

__all__ = [
    "ENGINE", "MotionCorrectionError", "MotionParameterError", "MotionResult", "PatchGrid", "check_motion_params",
    "correct_motion", "correct_motion_in_memory", "estimate_template", "highpass_filter",
    "make_patch_grid", "motion_result_from_arrays", "shift_field",
]
