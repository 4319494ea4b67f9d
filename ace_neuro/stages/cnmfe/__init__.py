"""Native CNMF-E source extraction (Zhou et al. 2018) for 1-photon miniscope movies.

Public API::

    run_cnmfe(frames, params, *, frame_rate, block_frames=128, progress=None) -> CnmfeResult
    cnmfe_summary_images(frames, gSig, *, n_frames=1000, ...) -> SummaryImages
    suggest_parameters(summary) -> Suggestion

Modules: :mod:`.summary` (correlation/PNR images), :mod:`.init` (greedy seeds),
:mod:`.background` (ring model), :mod:`.oasis` (deconvolution), :mod:`.update`
(spatial/temporal updates), :mod:`.merge`, :mod:`.patches`, :mod:`.engine`,
:mod:`.suggest`, :mod:`.scoring` (comparison with ground truth), :mod:`.result`.
"""
from .engine import check_cnmfe_params, run_cnmfe
from .errors import CnmfeError, CnmfeInputError, CnmfeParameterError
from .result import CnmfeResult
from .suggest import ParameterAdvice, Suggestion, advise_parameters, suggest_parameters
from .summary import SummaryImages, cnmfe_summary_images

__all__ = [
    "run_cnmfe", "check_cnmfe_params", "CnmfeResult", "cnmfe_summary_images", "SummaryImages",
    "suggest_parameters", "Suggestion", "advise_parameters", "ParameterAdvice", "CnmfeError", "CnmfeInputError", "CnmfeParameterError",
]
