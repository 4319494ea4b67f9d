"""The few kinds of error the platform raises, each with what it knows and how to fix it.

Every error the library raises on purpose belongs to one category, and the front ends
(the CLI, the Python API, the Dagster UI) choose what to tell the user by that
category, never by an error's name or text:

=====================  ======================================================  =========
category               what is wrong                                            base class
=====================  ======================================================  =========
``project``            experiments.csv, analysis_parameters.csv, curation       :class:`ProjectError`
``parameters``         a parameter value (CSV cell, ``--set``, ``run(...)``)    :class:`ParameterError`
``raw data``           the recording in a session folder                       :class:`RawDataError`
``environment``        the machine: disk, permissions, optional packages        :class:`EnvironmentProblem`
``internal``           our own bug                                              :class:`InternalError`
=====================  ======================================================  =========

Each error carries the file, the row and the parameter it knows of, and its fix;
``str(error)`` is the whole message a person reads. :func:`describe` turns any
exception (also one from outside the platform, e.g. a full disk) into that shape.
"""
from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator

#: The categories, in the order of the table above.
CATEGORIES = ("project", "parameters", "raw data", "environment", "internal")


class AceError(Exception):
    """Base of every error the platform raises on purpose.

    Parameters
    ----------
    problem : str
        What is wrong, in the user's terms.
    file, row, parameter : optional
        Where: the file (or folder) at fault, the CSV row (1-based physical line), the parameter.
    fix : str, optional
        What to do; the category's :attr:`default_fix` when not given.
    """

    category: ClassVar[str] = "internal"
    default_fix: ClassVar[str] = ""

    def __init__(self, problem: str = "", *, file: str | os.PathLike | None = None, row: int | None = None,
                 parameter: str | None = None, fix: str | None = None):
        super().__init__(problem)
        self.problem = str(problem).strip()
        self.file = None if file is None else os.fspath(file)
        self.row = None if row is None else int(row)
        self.parameter = parameter
        self.fix = fix if fix is not None else self.default_fix

    def __str__(self) -> str:
        return self.problem


class ProjectError(AceError, ValueError):
    """The user's project files (experiments.csv, analysis_parameters.csv, curation files)."""

    category = "project"
    default_fix = "correct the file as the message says, then run again."

    def __init__(self, problem: str = "", *, file: str | os.PathLike | None = None, fix: str | None = None, **where):
        if fix is None and file is not None:
            fix = (f"correct {os.path.basename(os.fspath(file))} as the message says (or the --line-num / "
                   f"--data-path given), then run again.")
        super().__init__(problem, file=file, fix=fix, **where)


class ParameterError(AceError, ValueError):
    """A parameter value that cannot be used, from a CSV cell, ``--set`` or ``run(NAME=...)``."""

    category = "parameters"
    default_fix = ("fix the value in analysis_parameters.csv (or the --set NAME=VALUE / run(NAME=...) argument), "
                   "or leave the cell empty for the default, then run again.")


class RawDataError(AceError, ValueError):
    """A raw recording that cannot be read or analysed as it is."""

    category = "raw data"
    default_fix = ("check that the session folder holds one complete recording in a supported format (copied in "
                   "full from the rig); re-copy damaged files, then run again.")


class EnvironmentProblem(AceError, RuntimeError):
    """The machine: a full or read-only disk, a missing optional package, no display."""

    category = "environment"
    default_fix = "fix the machine's setup as the message says (free space, permissions, a package), then run again."


class InternalError(AceError, RuntimeError):
    """Our own bug: a state the platform should never reach."""

    category = "internal"
    default_fix = ("this is a bug in the platform. Run again with --debug for the full traceback and report it "
                   "with the recording if it persists.")


@dataclass(frozen=True)
class ErrorReport:
    """Any exception described by category, in plain values (it crosses process boundaries)."""

    category: str
    error_class: str
    problem: str
    fix: str
    file: str | None = None
    row: int | None = None
    parameter: str | None = None

    def as_metadata(self) -> dict[str, str]:
        """String fields for a Dagster ``Failure``'s metadata (empty fields left out)."""
        fields = {"category": self.category, "error_class": self.error_class, "fix": self.fix,
                  "file": self.file, "row": self.row, "parameter": self.parameter}
        return {k: str(v) for k, v in fields.items() if v not in (None, "")}

    @classmethod
    def from_metadata(cls, metadata: dict, problem: str) -> "ErrorReport":
        row = metadata.get("row")
        return cls(category=metadata.get("category", "internal"), error_class=metadata.get("error_class", ""),
                   problem=problem, fix=metadata.get("fix", InternalError.default_fix),
                   file=metadata.get("file") or None, row=int(row) if row else None,
                   parameter=metadata.get("parameter") or None)


#: OS error numbers that are the machine's state, not our bug
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "the disk is full: free space on it (or choose another storage root), then run again.",
    errno.EACCES: "permission denied: make the folder writable for you (or choose another storage root), then "
                  "run again.",
    errno.EROFS: "the file system is read-only: choose a writable storage root (--storage-root or "
                 "ACE_STORAGE_ROOT), then run again.",
    errno.EPERM: "operation not permitted: check the folder's permissions, then run again.",
}
if hasattr(errno, "EDQUOT"):
    _ENVIRONMENT_ERRNOS[errno.EDQUOT] = "your disk quota is used up: free space, then run again."


def describe(exc: BaseException) -> ErrorReport:
    """The :class:`ErrorReport` of any exception: platform errors by category, disk and permission errors as
    the environment, a missing optional package as the environment, anything else as our own bug."""
    if isinstance(exc, AceError):
        return ErrorReport(exc.category, type(exc).__name__, exc.problem, exc.fix, exc.file, exc.row, exc.parameter)
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        return ErrorReport("environment", type(exc).__name__, str(exc), _ENVIRONMENT_ERRNOS[exc.errno],
                           file=exc.filename)
    if isinstance(exc, ModuleNotFoundError):
        return ErrorReport("environment", type(exc).__name__, str(exc),
                           f"install the missing package '{exc.name}' (pip install -e . installs every required "
                           f"one), then run again.")
    return ErrorReport("internal", type(exc).__name__, str(exc) or type(exc).__name__, InternalError.default_fix)


@contextmanager
def user_errors_as(convert: Callable[[ErrorReport], BaseException]) -> Iterator[None]:
    """Re-raise every error raised inside that is not our own bug as ``convert(its report)``.

    Platform errors and the machine's disk and permission errors are converted (a front end's
    message, a Dagster ``Failure``); a bug propagates unchanged, with its traceback.
    """
    try:
        yield
    except (AceError, OSError) as exc:
        report = describe(exc)
        if report.category == "internal":
            raise
        raise convert(report) from exc


__all__ = ["CATEGORIES", "user_errors_as", "AceError", "ProjectError", "ParameterError", "RawDataError", "EnvironmentProblem",
           "InternalError", "ErrorReport", "describe"]
