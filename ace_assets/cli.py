"""The lab's command line: ``python -m ace_neuro.pipelines.miniscope --line-num 96 --project-path P``.

::

    python -m ace_neuro.pipelines.miniscope --line-num 96 --project-path P [--data-path D]
        [--headless] [--storage-root R] [--crop-coords X0 Y0 X1 Y1 | --no-crop] [--no-review]
        [--set NAME=VALUE ...] [--list-parameters]

It stands for :meth:`ace_assets.pipeline.MiniscopePipeline.run` (one set of defaults for
both), prints each stage as it runs, and on failure prints one message: its category, the
file and row, the parameter and what to do, with no Dagster noise. Exit codes are
:data:`EXIT_CODES`.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Any, Sequence

from ace_neuro.errors import AceError, describe
from ace_neuro.params import ParameterError
from ace_neuro.params.table import text_listing
from ace_neuro.project import parse_cell

from .pipeline import MiniscopePipeline, PipelineError, _Where
from .progress import RUN_IN_PROGRESS

log = logging.getLogger("ace_assets.pipeline")
FRONT_END_LOGGER = "ace_assets.pipeline"

#: What the exit status means.
EXIT_CODES = {0: "every stage finished", 1: "a problem the message explains (project, parameters, raw data, "
                                           "environment) or a bug", 2: "the command line itself is wrong (usage)",
              130: "interrupted (Ctrl-C); finished stages are stored"}


def _parse_assignment(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected NAME=VALUE, e.g. --set 'gSig=(4, 4)'")
    name, value = text.split("=", 1)
    return name.strip(), parse_cell(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ace_neuro.pipelines.miniscope",
        description="Run the miniscope analysis (every stage, as Dagster assets) for one experiment line.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Parameters: explicit options win over analysis_parameters.csv, which wins over the defaults.\n"
               "Examples:\n"
               "  python -m ace_neuro.pipelines.miniscope --line-num 96 --project-path P --data-path D --headless\n"
               "  python -m ace_neuro.pipelines.miniscope --line-num 96 --project-path P --set 'gSig=(4, 4)' "
               "--set min_corr=0.85")
    parser.add_argument("--line-num", type=int, help="the session's 'line number' in experiments.csv (required)")
    parser.add_argument("--project-path", help="folder with experiments.csv and analysis_parameters.csv "
                                               "(default $ACE_PROJECT_PATH)")
    parser.add_argument("--data-path", help="root of the raw session folders (default $ACE_DATA_PATH)")
    parser.add_argument("--headless", action="store_true", help="no windows; figures are written to files")
    parser.add_argument("--storage-root", help="where outputs go (default $ACE_STORAGE_ROOT, else "
                                               "<session folder>/saved_movies)")
    crop = parser.add_mutually_exclusive_group()
    crop.add_argument("--crop-coords", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                      help="crop corners, origin bottom-left, y up (wins over the CSV)")
    crop.add_argument("--no-crop", action="store_true", help="do not crop")
    parser.add_argument("--no-review", action="store_true", help="do not open the component review window")
    parser.add_argument("--filenames", nargs="+", metavar="FILE", help="read only these video files of the session")
    parser.add_argument("--set", dest="assignments", action="append", type=_parse_assignment, default=[],
                        metavar="NAME=VALUE", help="any analysis_parameters.csv parameter, e.g. --set 'gSig=(4, 4)' "
                                                   "(--list-parameters shows them all)")
    parser.add_argument("--list-parameters", action="store_true",
                        help="list every parameter with its default, accepted values and meaning, then exit")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    return parser


class _RelayedDuringRuns(logging.Filter):
    """While a run executes, library warnings come through the run's relay (named by stage), not directly."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (RUN_IN_PROGRESS.is_set() and record.levelno < logging.ERROR
                    and not record.name.startswith(FRONT_END_LOGGER))


class _OncePerMessage(logging.Filter):
    """Let each distinct warning through once (the same reader warning is raised by every stage that scans)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        text = re.sub(r"^line \d+: [\w.]+: ", "", text)  # a stage's warning relayed from the run
        key = (record.levelno, text)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def _configure_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RelayedDuringRuns())
    handler.addFilter(_OncePerMessage())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger(FRONT_END_LOGGER).setLevel(logging.WARNING if quiet else logging.INFO)
    logging.captureWarnings(True)


def run_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :meth:`MiniscopePipeline.run` the command line stands for.

    Options not given stay out (so the API's defaults - the CSV, then :mod:`ace_neuro.params` -
    apply): the CLI and the API share one set of defaults.
    """
    kwargs: dict[str, Any] = {"line_num": args.line_num, "project_path": args.project_path,
                              "data_path": args.data_path, "headless": args.headless,
                              "storage_root": args.storage_root, "filenames": args.filenames}
    for name, value in args.assignments:
        if name in kwargs:
            raise ParameterError(f"--set {name}=...: '{name}' has its own option (--{name.replace('_', '-')})")
        kwargs[name] = value
    if args.crop_coords is not None:
        kwargs["crop_coords"] = tuple(args.crop_coords)
    if args.no_crop:
        kwargs["crop"] = False
    if args.no_review:
        kwargs["remove_components_with_gui"] = False
    return kwargs


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (see :data:`EXIT_CODES`; argparse exits 2 itself)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_parameters:
        print(text_listing())
        return 0
    if args.line_num is None:
        parser.error("the following arguments are required: --line-num")
    _configure_logging(args.quiet)
    if args.headless:
        import matplotlib

        matplotlib.use("Agg")  # figures go to files; nothing may try to open a window
    try:
        MiniscopePipeline().run(**run_arguments(args))
    except (PipelineError, AceError) as exc:
        if args.debug:
            raise
        if not isinstance(exc, PipelineError):  # raised while reading the command line's own values
            exc = PipelineError.from_report(describe(exc), stage="arguments", line_num=args.line_num,
                                            where=_Where(None, args.line_num))
        log.error("%s", exc.message())
        return 1
    except KeyboardInterrupt:
        log.error("line %d: interrupted; finished stages are stored, unfinished ones left nothing behind.",
                  args.line_num)
        return 130
    return 0
