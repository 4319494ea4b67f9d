"""Every parameter check that needs only the recording's size, length and frame rate, run before compute.

The stages make the same checks when they run (and raise the same errors); this runs
them all at once, from a reader's :class:`~ace_neuro.readers.RecordingInfo`, so a
cut-off above the Nyquist frequency or a spectrogram window longer than the recording
is reported in seconds, not after an hour of motion correction and CNMF-E.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..engines import get_engine
from ..params import PipelineParams
from .cnmfe.engine import check_cnmfe_params
from .crop import crop_box_from_coords
from .motion.validation import check_motion_params
from .phase import PhaseParameterError, design_filter
from .spectrogram import spectrogram_windows


@dataclass(frozen=True)
class RecordingShape:
    """What the checks need to know of a recording."""

    height: int
    width: int
    n_frames: int
    frame_rate: float


def check_before_compute(params: PipelineParams, recording: RecordingShape) -> None:
    """Raise the :class:`~ace_neuro.errors.ParameterError` that a stage would raise later, now.

    Checks that the engine is installed, the crop box against the frame, motion correction's shifts, filter and patches
    against the cropped frame, CNMF-E's border and downsampling, the band-pass cut-offs against
    the Nyquist frequency and the recording's length, and the spectrogram window against the
    recording's length.
    """
    if params.motion.enabled or params.cnmfe.enabled:
        # EngineUnavailableError (the environment) when it is not installed; for caiman this is the probe
        # of ACE_CAIMAN_PYTHON that the engine itself uses (its answer is remembered for this process)
        get_engine(params.engine.name)
    h, w = recording.height, recording.width
    if params.crop.enabled and params.crop.coords is not None:
        box = crop_box_from_coords(params.crop.coords, (h, w))
        h, w = box.height, box.width
    if params.motion.enabled:
        check_motion_params(params.motion, (h, w))
    if params.cnmfe.enabled:
        check_cnmfe_params(params.cnmfe, (h, w))
    fs, n = recording.frame_rate, recording.n_frames
    if params.filter.phase_enabled and params.filter.filter_enabled:
        design = design_filter(fs, params.filter)
        if n < design.min_samples:
            raise PhaseParameterError(
                f"the recording has {n} frames but the {design.ftype} {design.btype} filter at {design.edges_hz} Hz "
                f"needs at least {design.min_samples} for zero-phase filtering; raise the low cut-off (cut) or use "
                f"a longer recording", parameter="cut")
    if params.spectrogram.enabled:
        spectrogram_windows(fs, params.spectrogram, n)
