"""Typed, validated parameters for every stage, each declared once.

- :mod:`.declare`: how a parameter is declared (CSV name, kind and range, default, help).
- :mod:`.stages`: the declarations, one frozen dataclass per stage.
- :mod:`.resolve`: defaults < CSV row < explicit arguments, and the snapshots' JSON and hash.
- :mod:`.table`: the README's table and the CLI's listing, written from the declarations.
"""
from ..errors import ParameterError
from .declare import Parameter, StageParams, declarations, declared
from .resolve import (KNOWN_PARAMETERS, UNSUPPORTED_CAIMAN_PARAMETERS, ParameterLayer, all_declarations,
                      build_pipeline_params, check_parameter_names, params_from_dict, params_hash, params_to_dict,
                      unknown_parameter_names)
from .stages import (PIPELINE_FIELDS, STAGE_TYPES, CnmfeParams, CropParams, DetrendParams, DffParams, EngineParams,
                     EvaluationParams, EventParams, ExportParams, FilterParams, MotionParams, PipelineParams,
                     SpectrogramParams)

__all__ = [
    "ParameterError", "Parameter", "StageParams", "declarations", "declared", "all_declarations",
    "CropParams", "DetrendParams", "DffParams", "MotionParams", "CnmfeParams", "EvaluationParams", "EventParams",
    "FilterParams", "SpectrogramParams", "ExportParams", "EngineParams", "PipelineParams", "PIPELINE_FIELDS", "STAGE_TYPES",
    "ParameterLayer", "build_pipeline_params", "check_parameter_names", "unknown_parameter_names",
    "KNOWN_PARAMETERS", "UNSUPPORTED_CAIMAN_PARAMETERS", "params_to_dict", "params_from_dict", "params_hash",
]
