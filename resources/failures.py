"""Platform errors become Dagster ``Failure`` events that keep their category, file, row, parameter and fix.

A stage (or an IO manager streaming it) raises one of :mod:`ace_neuro.errors`; Dagster
would record only its class name and text. Raised as a ``Failure`` with that report as
metadata, the UI shows the fix beside the message, and the CLI reads the category from
the run's failure event instead of guessing from the class name. Our own bugs are not
converted: they keep their traceback.
"""
from __future__ import annotations

import functools
import inspect

from dagster import Failure

from ace_neuro.errors import user_errors_as


def failures_reported():
    """Turn a platform error (or a full / read-only disk) raised inside into a ``Failure`` with its report."""
    return user_errors_as(lambda report: Failure(description=report.problem, metadata=report.as_metadata(),
                                                 allow_retries=False))


def reports_failures(fn):
    """Decorator form of :func:`failures_reported`, for asset functions (plain or generators)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            with failures_reported():
                yield from fn(*args, **kwargs)
        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        with failures_reported():
            return fn(*args, **kwargs)
    return plain
