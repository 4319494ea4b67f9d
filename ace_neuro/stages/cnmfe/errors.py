"""Errors raised by the CNMF-E stage (all are ``ValueError`` subclasses)."""
from __future__ import annotations


class CnmfeError(ValueError):
    """Input or parameter that CNMF-E cannot use; the message says what to change."""


class CnmfeInputError(CnmfeError):
    """The movie (shape, dtype, values) cannot be analysed as given."""


class CnmfeParameterError(CnmfeError):
    """A CNMF-E parameter value is out of range or unsupported by the native engine."""
