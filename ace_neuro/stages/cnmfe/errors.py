"""Errors raised by the CNMF-E stage: the movie (raw data) or a parameter value."""
from __future__ import annotations

from ...errors import ParameterError, RawDataError


class CnmfeError(RawDataError):
    """Input or parameter that CNMF-E cannot use; the message says what to change."""


class CnmfeInputError(CnmfeError):
    """The movie (shape, dtype, values) cannot be analysed as given."""


class CnmfeParameterError(ParameterError, CnmfeError):
    """A CNMF-E parameter value is out of range or unsupported by the native engine."""
