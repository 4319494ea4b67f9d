"""Interactive windows of the lab's front end (used only when not headless).

Each window is split in two:

* a *model* (pure Python: state and callbacks, no drawing) that tests drive directly, and
* a *view* built with matplotlib widgets (``RectangleSelector``, ``RadioButtons``,
  ``Button``) on any :class:`~matplotlib.figure.Figure`, so it can be driven with
  synthetic mouse events under the Agg backend.

Only the ``select_*``/``review_*`` entry points import :mod:`matplotlib.pyplot`, and only
when called: importing this package never loads a GUI toolkit.

- :mod:`ace_neuro.interactive.crop_window` - choose ``crop_coords`` on a projection
- :mod:`ace_neuro.interactive.review_window` - accept/reject CNMF-E components
"""
from __future__ import annotations

import logging

from ..errors import EnvironmentProblem

log = logging.getLogger(__name__)


class InteractiveUnavailableError(EnvironmentProblem):
    """A window was asked for but no interactive matplotlib backend (display) is available."""


def interactive_pyplot():
    """:mod:`matplotlib.pyplot`, checked to drive a real window.

    Raises
    ------
    InteractiveUnavailableError
        When matplotlib runs on a non-interactive backend (no display, ``MPLBACKEND=Agg``):
        the caller should run headless or pass the choice explicitly.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend().lower()
    if backend in _non_interactive_backends():
        raise InteractiveUnavailableError(
            f"matplotlib backend '{backend}' cannot open a window (no display?). Run with --headless "
            f"(headless=True), or give the choice explicitly (crop_coords=..., a curation file), or set "
            f"MPLBACKEND to an interactive backend such as QtAgg or TkAgg.")
    return plt


def _non_interactive_backends() -> set[str]:
    try:
        from matplotlib.backends import BackendFilter, backend_registry

        return {b.lower() for b in backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE)}
    except ImportError:  # matplotlib < 3.9
        from matplotlib import rcsetup

        return {b.lower() for b in rcsetup.non_interactive_bk}


__all__ = ["InteractiveUnavailableError", "interactive_pyplot"]
