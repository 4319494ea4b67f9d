"""The high-pass scale (``gSig_filt``) the data call for.

Shifts are estimated on a band-passed copy that must keep the structure the recording holds. In
1-photon data that structure is the neurons as the optics blur them: on a UCLA V4 the observed
footprint of an in-focus cell is several pixels wider than its soma. A ``gSig_filt`` set to the
soma radius then passes mostly noise and fine vessel texture, and shift estimates get worse than
no correction at all. The observed footprint width is measured as CNMF-E's parameter suggestion
measures it (the movie averaged where a seed is active minus where it is not), on a subsample of
the uncorrected movie (motion blurs it by a fraction of a pixel, negligible against the blur),
and the suggested ``gSig_filt`` is that width rounded, as the suggested ``gSig`` is.

With ``use_suggested_params`` the suggestion replaces the CSV's value; otherwise a value more than
``ADVICE_TOLERANCE`` away from it is reported and the CSV's value is used.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from ...params import MotionParams
from ..cnmfe.suggest import ADVICE_TOLERANCE, SUGGESTION_SWITCH, suggest_parameters
from ..cnmfe.summary import cnmfe_summary_images

log = logging.getLogger(__name__)

SAMPLE_FRAMES = 400  # frames of the subsample the footprint width is measured on (200 was noisy on cortex)
START_GSIG = (3, 3)
MIN_FRAMES = 20  # fewer frames give no noise estimate: nothing is suggested  # filter the seeds are found with before their width is measured


@dataclass(frozen=True)
class HighpassSuggestion:
    """``gSig_filt`` from the observed footprint width.

    Attributes
    ----------
    gSig_filt : (int, int) or None
        None when no footprint could be measured.
    footprint_sigma_px : float
        Median Gaussian width of the measured footprints (NaN if none).
    n_measured : int
        Footprints measured.
    """

    gSig_filt: tuple[int, int] | None
    footprint_sigma_px: float
    n_measured: int


def suggest_highpass(frames, *, n_frames: int = SAMPLE_FRAMES, block_frames: int = 128) -> HighpassSuggestion:
    """Measure the observed footprint width on a subsample of ``frames`` (T, H, W), read in blocks."""
    if int(frames.shape[0]) < MIN_FRAMES:
        return HighpassSuggestion(None, float("nan"), 0)
    summary = cnmfe_summary_images(frames, START_GSIG, n_frames=min(int(n_frames), int(frames.shape[0])),
                                   block_frames=int(block_frames))
    sug = suggest_parameters(summary)
    if sug.n_measured == 0:
        return HighpassSuggestion(None, float("nan"), 0)
    return HighpassSuggestion(tuple(int(g) for g in sug.gSig), float(sug.footprint_sigma_px), int(sug.n_measured))


def highpass_advice(params: MotionParams, suggestion: HighpassSuggestion, *,
                    tolerance: float = ADVICE_TOLERANCE) -> str | None:
    """A sentence for the run log when the CSV's ``gSig_filt`` is far from the suggestion, else None."""
    if suggestion.gSig_filt is None or params.gSig_filt is None:
        return None
    csv, best = max(params.gSig_filt), max(suggestion.gSig_filt)
    rel = abs(csv - best) / best
    if rel <= tolerance:
        return None
    direction = "above" if csv > best else "below"
    return (f"gSig_filt = {_pair(params.gSig_filt)} in analysis_parameters.csv is {100 * rel:.0f}% {direction} the "
            f"observed footprint width {suggestion.footprint_sigma_px:.1f} px (suggested {_pair(suggestion.gSig_filt)}); "
            f"the CSV's value is used for motion correction. Set {SUGGESTION_SWITCH} to use the data's value.")


def resolve_highpass(frames, params: MotionParams, *,
                     block_frames: int = 128) -> tuple[MotionParams, list[str], list[str]]:
    """``params`` with the suggested ``gSig_filt`` when ``use_suggested``, notes, and advice.

    Without ``use_suggested`` the parameters are returned unchanged, with advice (a warning for
    the run log) when the CSV's value is far from the data's.
    """
    if params.gSig_filt is None and not params.use_suggested:
        return params, [], []
    suggestion = suggest_highpass(frames, block_frames=block_frames)
    if params.use_suggested:
        if suggestion.gSig_filt is None:
            return params, [f"use_suggested: no footprint could be measured; gSig_filt {_pair(params.gSig_filt)} kept"], []
        note = (f"use_suggested: gSig_filt {_pair(params.gSig_filt)} -> {_pair(suggestion.gSig_filt)} "
                f"(observed footprint width {suggestion.footprint_sigma_px:.1f} px of {suggestion.n_measured} cells)")
        log.info(note)
        return dataclasses.replace(params, gSig_filt=suggestion.gSig_filt), [note], []
    advice = highpass_advice(params, suggestion)
    if advice:
        log.warning(advice)
    return params, [], [advice] if advice else []


def _pair(v) -> str:
    return "None" if v is None else f"({v[0]}, {v[1]})"
