"""The engine interface: motion correction and CNMF-E behind one small interface.

``native`` (default) is this project's NumPy/SciPy/OpenCV implementation: it installs
with pip and is the one the tests and benchmarks hold to accuracy and speed targets.
``caiman`` runs CaImAn, which users install with conda in an environment of its own (it is
not on PyPI; the PyPI package of that name is an unrelated project): the environment
variable ``ACE_CAIMAN_PYTHON`` names that environment's Python, and
:mod:`~ace_neuro.engines.caiman_engine` runs CaImAn there (see :mod:`~ace_neuro.engines.caiman_runner`).
Both return the same result types (:class:`~ace_neuro.movie.MovieStream` with motion extras,
and :class:`~ace_neuro.stages.cnmfe.CnmfeResult`), so everything downstream is engine-blind.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Callable

from ..errors import EnvironmentProblem

ENGINES = ("native", "caiman")


class EngineUnavailableError(EnvironmentProblem):
    """The requested engine cannot run here; the message says how to get it or what to use."""


@dataclass(frozen=True)
class Engine:
    """One implementation of the two heavy stages."""

    name: str
    version: str
    correct_motion: Callable  # (frames, MotionParams, *, times, frame_rate) -> MovieStream
    run_cnmfe: Callable  # (frames, CnmfeParams, *, frame_rate, progress) -> CnmfeResult
    #: the Python that runs the engine's code (this one for native, CaImAn's for caiman)
    interpreter: str = sys.executable


def caiman_available() -> bool:
    """Whether a real CaImAn (with its source-extraction package) is importable."""
    try:
        return importlib.util.find_spec("caiman.source_extraction.cnmf") is not None
    except (ImportError, ValueError):
        return False


def get_engine(name: str = "native") -> Engine:
    """The engine called ``name`` ('native' or 'caiman')."""
    if name == "native":
        from .. import __version__
        from ..stages.cnmfe import run_cnmfe
        from ..stages.motion import correct_motion

        return Engine("native", __version__, correct_motion, run_cnmfe)
    if name == "caiman":
        from .caiman_engine import CaimanEngine, engine_interpreter

        python, version = engine_interpreter()  # the one environment error when it does not work
        engine = CaimanEngine(python, version)
        return Engine("caiman", version, engine.correct_motion, engine.run_cnmfe, interpreter=python)
    raise EngineUnavailableError(f"engine = {name!r}: expected one of {ENGINES}")
