"""The engine interface: motion correction and CNMF-E behind one small interface.

``native`` (default) is this project's NumPy/SciPy/OpenCV implementation: it installs
with pip and is the one the tests and benchmarks hold to accuracy and speed targets.
``caiman`` is reserved for CaImAn, which users install with conda (it is not on PyPI;
the PyPI package of that name is an unrelated project). Both must return the same
result types (:class:`~ace_neuro.movie.MovieStream` with motion extras, and
:class:`~ace_neuro.stages.cnmfe.CnmfeResult`), so everything downstream is engine-blind.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

from .errors import EnvironmentProblem

ENGINES = ("native", "caiman")


class EngineUnavailableError(EnvironmentProblem):
    """The requested engine cannot run here; the message says how to get it or what to use."""


@dataclass(frozen=True)
class Engine:
    """One implementation of the two heavy stages."""

    name: str
    version: str
    correct_motion: Callable  # (frames, MotionParams, *, times, frame_rate) -> MovieStream
    run_cnmfe: Callable  # (frames, CnmfeParams, *, frame_rate) -> CnmfeResult


def caiman_available() -> bool:
    """Whether a real CaImAn (with its source-extraction package) is importable."""
    try:
        return importlib.util.find_spec("caiman.source_extraction.cnmf") is not None
    except (ImportError, ValueError):
        return False


def get_engine(name: str = "native") -> Engine:
    """The engine called ``name`` ('native' or 'caiman')."""
    if name == "native":
        from . import __version__
        from .stages.cnmfe import run_cnmfe
        from .stages.motion import correct_motion

        return Engine("native", __version__, correct_motion, run_cnmfe)
    if name == "caiman":
        if not caiman_available():
            raise EngineUnavailableError(
                "engine = 'caiman' but CaImAn is not importable in this environment. Install it with conda "
                "(conda install -c conda-forge caiman; note CaImAn 1.12 does not work with SciPy 1.17), or set "
                "engine to 'native' (or leave the cell empty). Do not `pip install caiman`: that PyPI package "
                "is an unrelated MicroPython tool.")
        raise EngineUnavailableError(
            "engine = 'caiman': CaImAn is importable, but this release ships no CaImAn adapter yet; "
            "use engine = 'native'.")
    raise EngineUnavailableError(f"engine = {name!r}: expected one of {ENGINES}")
