"""The lab's front ends: the command line and ``MiniscopePipeline().run(...)``.

Command line::

    python -m ace_neuro.pipelines.miniscope --line-num 96 --project-path P [--data-path D]
        [--headless] [--storage-root R] [--crop-coords X0 Y0 X1 Y1 | --no-crop] [--no-review]
        [--set NAME=VALUE ...]

Python::

    from ace_neuro.pipelines.miniscope import MiniscopePipeline
    result = MiniscopePipeline().run(line_num=96, project_path=..., data_path=..., headless=True,
                                     crop_coords=None, gSig=(4, 4))

Both run the same Dagster asset graph as the UI, for one experiment line, through
:func:`ace_assets.runner.materialize_lines` (imported when :meth:`MiniscopePipeline.run`
is called: importing this module never imports Dagster). One set of defaults
serves both: an argument left at ``None`` is "not given", so the line's row of
``analysis_parameters.csv`` decides, and where that cell is empty the defaults of
:mod:`ace_neuro.params` apply. Explicit arguments win over the CSV.

Outputs go to ``<storage root>/<asset>/<line>.zarr|.parquet`` where the storage root is,
in order: ``storage_root=`` / ``--storage-root``, the ``ACE_STORAGE_ROOT`` environment
variable, or ``<session folder>/saved_movies``. Keys are line numbers, so two lines never
share an output; writes are atomic. Every preview figure is also written as a PNG under
``<storage root>/figures/<line>/``.

Headless, no window opens and no GUI toolkit is imported. Otherwise a crop window
opens when the line has no ``crop_coords`` (the choice is saved to
``analysis_parameters.csv``), and a component review window opens after CNMF-E (the
choice is saved to the line's curation file and the downstream assets are re-run).
"""
from __future__ import annotations

import argparse
import base64
import difflib
import logging
import os
import re
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ace_neuro.params import KNOWN_PARAMETERS, ParameterError, build_pipeline_params
from ace_neuro.project import Project, ProjectError, curation_file, parse_cell, save_crop_coords
from ace_neuro.readers import ReaderError, open_recording
from ace_neuro.stages.crop import CropError, crop_box_from_coords

log = logging.getLogger("ace_neuro.pipelines.miniscope")  # also when run as __main__

#: Arguments of the original API that this platform handles differently; accepted so
#: old scripts keep running, with a note of what happens instead.
ORIGINAL_ARGUMENTS_NOT_NEEDED: Mapping[str, str] = {
    "parallel": "runs are scheduled by Dagster; motion correction and CNMF-E share the 'heavy' concurrency pool",
    "n_processes": "runs are scheduled by Dagster; motion correction and CNMF-E share the 'heavy' concurrency pool",
    "save_estimates": "every stage's output is always stored (CNMF-E: <storage root>/cnmfe_estimates/<line>.zarr)",
    "save_CNMFE_estimates_filename": "CNMF-E estimates are stored as <storage root>/cnmfe_estimates/<line>.zarr",
    "save_CNMFE_params": "the parameters used are stored in every asset's metadata",
    "inline": "filtered traces are stored beside the unfiltered ones",
    "plot_params": "figures are written to <storage root>/figures/<line>/",
    "inspect_motion_correction": "motion-correction figures are written to <storage root>/figures/<line>/",
}
#: Stages in the order the original ran them (asset names), for messages.
STAGE_ORDER = ("raw_movie", "frame_times", "cropped_movie", "dff_movie", "motion_corrected_movie",
               "cnmfe_estimates", "accepted_components", "calcium_events", "calcium_phase", "spectrograms")
CURATION_ASSET = "accepted_components"
#: Dagster's own console logger is silenced; stage progress and warnings are logged by _StageProgress.
QUIET_DAGSTER = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class PipelineError(RuntimeError):
    """A run that could not complete, described for a person.

    Attributes
    ----------
    stage : str
        Where it stopped (``"project"``, ``"raw data"`` or an asset name such as ``"cnmfe_estimates"``).
    line_num : int
    problem : str
        What went wrong (the underlying error's message).
    file : str
        The file or folder to look at.
    hint : str
        What to do about it.
    run_id : str
        The Dagster run, when one was started ("" otherwise).
    """

    def __init__(self, problem: str, *, stage: str, line_num: int, file: str | os.PathLike = "",
                 hint: str = "", run_id: str = "", error_class: str = ""):
        self.problem = problem.strip()
        self.stage = stage
        self.line_num = int(line_num)
        self.file = str(file)
        self.hint = hint
        self.run_id = run_id
        self.error_class = error_class
        super().__init__(self.message())

    def message(self) -> str:
        kind = f" ({self.error_class})" if self.error_class else ""
        lines = [f"line {self.line_num}: stage '{self.stage}' failed{kind}: {self.problem}"]
        if self.file:
            lines.append(f"  file: {self.file}")
        if self.hint:
            lines.append(f"  what to do: {self.hint}")
        if self.run_id:
            lines.append(f"  Dagster run: {self.run_id}")
        return "\n".join(lines)


@dataclass(frozen=True)
class PipelineResult:
    """What :meth:`MiniscopePipeline.run` did for one line.

    Attributes
    ----------
    line_num : int
    storage_root : Path
        Where the outputs are (``<root>/<asset>/<line>.zarr|.parquet``).
    outputs : mapping str -> Path
        Asset name -> stored file or folder.
    figures : mapping str -> Path
        Figure name (asset, or asset_key) -> PNG written under ``<root>/figures/<line>/``.
    run_ids : tuple of str
        The Dagster runs (one for the graph, plus one before the crop window and one
        after the review window when those opened).
    seconds : float
        Wall time of the whole call.
    step_seconds : mapping str -> float
        Seconds per stage (asset).
    crop_coords : (x0, y0, x1, y1) or None
        The crop used (from the argument, the CSV or the window); None = not cropped.
    curation_file : Path or None
        The curation file written by the review window, if it opened and was saved.
    metadata : mapping str -> mapping
        Asset name -> the metadata recorded with its materialisation (plain values).
    """

    line_num: int
    storage_root: Path
    outputs: Mapping[str, Path]
    figures: Mapping[str, Path]
    run_ids: tuple[str, ...]
    seconds: float
    step_seconds: Mapping[str, float] = field(default_factory=dict)
    crop_coords: tuple[int, int, int, int] | None = None
    curation_file: Path | None = None
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


# --------------------------------------------------------------------------- arguments
def parameter_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Explicit parameters (CSV names) that were given, checked against the names the platform knows.

    ``None`` means "not given" and is dropped. ``crop=False`` disables the crop stage.

    Raises
    ------
    ParameterError
        For a name the platform does not know (with the closest known names).
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name not in KNOWN_PARAMETERS:
            close = difflib.get_close_matches(name, sorted(KNOWN_PARAMETERS), n=3)
            maybe = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ParameterError(f"parameter '{name}' is not one the platform knows.{maybe} "
                                 f"Use the analysis_parameters.csv column names (e.g. gSig, min_corr).")
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def resolve_storage_root(storage_root: str | os.PathLike | None, session_dir: Path) -> Path:
    """``storage_root``, else ``$ACE_STORAGE_ROOT``, else ``<session folder>/saved_movies``."""
    if storage_root:
        return Path(storage_root).expanduser().resolve()
    env = os.environ.get("ACE_STORAGE_ROOT", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return (session_dir / "saved_movies").resolve()


def _note_original_arguments(given: Mapping[str, Any]) -> None:
    for name, value in given.items():
        if value is not None:
            log.info("argument %s=%r is accepted for compatibility: %s", name, value,
                     ORIGINAL_ARGUMENTS_NOT_NEEDED[name])


# --------------------------------------------------------------------------- errors
def _error_hint(error_class: str, stage: str, project: Project, line_num: int, session_dir: Path,
                storage_root: Path) -> tuple[str, str]:
    """(file, what to do) for an error raised inside a stage, from the error's class name."""
    row = project.parameter_row_lines.get(line_num)
    params_file = f"{project.parameters_file}" + (f" (row {row})" if row else "")
    name = error_class.lower()
    if "reader" in name or "video" in name:
        return (str(session_dir), "check the session folder is complete (copied in full from the rig) and "
                                  "holds one recording; re-copy damaged files, then run again.")
    if "project" in name:
        return (str(project.experiments_file), "correct the CSV file as the message says, then run again.")
    if "storage" in name:
        return (str(storage_root), "check the storage root is writable and has free space, then run again.")
    if any(k in name for k in ("parameter", "param", "crop", "config")) or name == "valueerror" or \
            name.endswith("valueerror"):
        return (params_file, f"fix the parameter in analysis_parameters.csv for line {line_num} (or pass it "
                             f"explicitly: --set NAME=VALUE / run(NAME=...)), then run again.")
    return (str(session_dir), f"this is unexpected in stage '{stage}'. Run again with --debug for the full "
                              f"traceback, or open the run in the Dagster UI, and report it with the "
                              f"recording if it persists.")


# --------------------------------------------------------------------------- progress
#: Set while a run executes in this process: the CLI's log filter then shows the stages' warnings
#: as the run relays them (once, with the stage's name) instead of the library's own copies.
RUN_IN_PROGRESS = threading.Event()


def _check_step_names() -> set[str]:
    from ace_assets.definitions import all_checks

    return {c.node_def.name for c in all_checks()}


#: how Dagster's executor says it skips a step whose upstream failed
_SKIPPED_STEP_MESSAGE = "Dependencies for step"


class _StageProgress:
    """Logs each stage's start and end (with timings) while a run executes in this process.

    A background thread polls the instance's event log for the run tagged with the
    line (the run executes in the calling thread), so long stages show up on the
    terminal as they start and finish, not only at the end.
    """

    def __init__(self, instance, line_num: int, *, interval_s: float = 0.5):
        self.instance = instance
        self.line = str(line_num)
        self.interval_s = interval_s
        self.since = datetime.now(timezone.utc) - timedelta(seconds=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"progress-line-{line_num}", daemon=True)
        self._run_id: str | None = None
        self._seen = 0
        self._started: dict[str, float] = {}
        self._check_steps = _check_step_names()
        self.checks_passed = 0
        self.checks_failed = 0
        self.skipped: set[str] = set()  # steps not run because an upstream stage failed

    def __enter__(self) -> "_StageProgress":
        RUN_IN_PROGRESS.set()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        RUN_IN_PROGRESS.clear()
        self._poll()
        if self.checks_passed or self.checks_failed:
            log.log(logging.WARNING if self.checks_failed else logging.INFO,
                    "line %s: quality checks: %d passed, %d did not pass", self.line, self.checks_passed,
                    self.checks_failed)
        if self.skipped:
            log.info("line %s: %d later stages and checks were not run (they need the failed one)", self.line,
                     len(self.skipped))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()

    def _poll(self) -> None:
        from ace_assets.runner import latest_line_run_id

        if self._run_id is None:
            self._run_id = latest_line_run_id(self.instance, self.line, since=self.since)
            if self._run_id is None:
                return
        records = self.instance.all_logs(self._run_id)
        for record in records[self._seen:]:
            self._report(record)
        self._seen = len(records)

    def _report(self, record) -> None:
        ev = record.dagster_event
        step = record.step_key or "?"
        if ev is None:  # a message logged by a stage (context.log), or by Dagster's executor
            if record.user_message.startswith(_SKIPPED_STEP_MESSAGE):
                self.skipped.add(step)  # one per stage after a failure: said once, with the failure
                return
            if record.level >= logging.WARNING:
                message = re.sub(rf"^line {self.line}: ", "", record.user_message)
                log.log(record.level, "line %s: %s: %s", self.line, step, message)
            return
        kind = ev.event_type_value
        if step in self._check_steps and kind != "ASSET_CHECK_EVALUATION":
            return  # quality checks are reported by their evaluation, not as stages
        if kind == "STEP_START":
            self._started[step] = record.timestamp
            log.info("line %s: %s started", self.line, step)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            took = record.timestamp - self._started.get(step, record.timestamp)
            if kind == "STEP_SUCCESS":
                log.info("line %s: %s done in %.1f s", self.line, step, took)
            else:
                log.error("line %s: %s FAILED after %.1f s", self.line, step, took)
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = ev.event_specific_data
            if evaluation is not None and getattr(evaluation, "passed", True):
                self.checks_passed += 1
            elif evaluation is not None:
                self.checks_failed += 1
                check = getattr(getattr(evaluation, "asset_check_key", None), "name", "?")
                asset = evaluation.asset_key.to_user_string()
                desc = getattr(evaluation, "description", "") or ""
                log.warning("line %s: quality check '%s' on %s did not pass%s", self.line, check, asset,
                            f": {desc}" if desc else "")


# --------------------------------------------------------------------------- figures
_PNG_MD = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


def write_figures(metadata: Mapping[str, Mapping[str, Any]], folder: str | os.PathLike) -> dict[str, Path]:
    """Write every inline PNG preview found in the assets' metadata to ``folder``.

    Parameters
    ----------
    metadata : mapping
        Asset name -> metadata (plain values; previews are markdown with a base64 PNG).
    folder : path
        Created if needed; files are ``<asset>.png`` (``<asset>_<key>.png`` for a
        second figure of the same asset).

    Returns
    -------
    dict
        Figure name -> path written.
    """
    folder = Path(folder)
    written: dict[str, Path] = {}
    for asset, meta in metadata.items():
        for key, value in meta.items():
            if not isinstance(value, str):
                continue
            for i, match in enumerate(_PNG_MD.finditer(value)):
                name = asset if key == "preview" and i == 0 else f"{asset}_{key}" + (f"_{i}" if i else "")
                path = folder / f"{name}.png"
                folder.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".png.tmp")
                tmp.write_bytes(base64.b64decode(match.group(1)))
                os.replace(tmp, path)
                written[name] = path
    return written


# --------------------------------------------------------------------------- the pipeline
CropSelector = Callable[..., Any]
ComponentReviewer = Callable[..., Any]


class MiniscopePipeline:
    """Run the whole analysis for one experiment line, as the lab's scripts did.

    Parameters
    ----------
    instance : DagsterInstance, optional
        Where runs are recorded. Default: the instance under ``DAGSTER_HOME`` (so the
        runs appear in the UI), or a temporary one when it is not set.
    crop_selector : callable, optional
        ``(projections, *, kind, coords, title) -> CropChoice``; default
        :func:`ace_neuro.interactive.crop_window.select_crop` (a matplotlib window).
    component_reviewer : callable, optional
        ``(inputs: ReviewInputs, *, title) -> ReviewOutcome``; default
        :func:`ace_neuro.interactive.review_window.review_components` (a matplotlib window).

    Both callables are how a notebook (or a test) supplies its own way of choosing;
    when given, no matplotlib window is opened for that step.
    """

    def __init__(self, *, instance=None, crop_selector: CropSelector | None = None,
                 component_reviewer: ComponentReviewer | None = None):
        self.instance = instance
        self.crop_selector = crop_selector
        self.component_reviewer = component_reviewer

    def run(self, line_num: int, project_path: str | os.PathLike | None = None,
            data_path: str | os.PathLike | None = None, *, filenames: Sequence[str] | None = None,
            headless: bool = False, storage_root: str | os.PathLike | None = None,
            # preprocessing
            crop: bool | None = None, crop_coords: Sequence[int] | None = None, detrend_method: str | None = None,
            df_over_f: bool | None = None, secs_window: float | None = None, quantile_min: float | None = None,
            df_over_f_method: str | None = None,
            # processing
            apply_motion_correction: bool | None = None, run_CNMFE: bool | None = None,
            # post-processing
            remove_components_with_gui: bool | None = None, find_calcium_events: bool | None = None,
            derivative_for_estimates: str | None = None, event_height: float | None = None,
            compute_miniscope_phase: bool | None = None, filter_miniscope_data: bool | None = None,
            n: int | None = None, cut: Sequence[float] | None = None, ftype: str | None = None,
            btype: str | None = None, compute_miniscope_spectrogram: bool | None = None,
            window_length: float | None = None, window_step: float | None = None,
            freq_lims: Sequence[float] | None = None, time_bandwidth: float | None = None,
            # the original's arguments this platform does not need
            parallel: bool | None = None, n_processes: int | None = None,
            inspect_motion_correction: bool | None = None, plot_params: bool | None = None,
            save_estimates: bool | None = None, save_CNMFE_estimates_filename: str | None = None,
            save_CNMFE_params: bool | None = None, inline: bool | None = None,
            **parameters: Any) -> PipelineResult:
        """Materialise every asset for ``line_num``; open the crop and review windows unless headless.

        Parameters
        ----------
        line_num : int
            The ``line number`` of the session in experiments.csv (not a row position).
        project_path : path
            Folder with experiments.csv and analysis_parameters.csv (default ``$ACE_PROJECT_PATH``).
        data_path : path, optional
            Root of the raw session folders (default ``$ACE_DATA_PATH``).
        filenames : sequence of str, optional
            Read only these video files of the session (e.g. ``["0.avi"]``); a name that
            matches no video is an error.
        headless : bool
            No window, no GUI toolkit; without ``crop_coords`` the movie is not cropped.
        storage_root : path, optional
            Where outputs go (default ``$ACE_STORAGE_ROOT``, else ``<session>/saved_movies``).
        crop, crop_coords, detrend_method, ..., time_bandwidth
            The original's stage switches and parameters (CSV names). ``None`` = not given:
            the CSV decides, then the defaults. ``crop_coords`` is (x0, y0, x1, y1), origin
            bottom-left (SPEC 3.1).
        remove_components_with_gui : bool, optional
            Open the component review window after CNMF-E (default: yes unless headless).
        parallel, n_processes, inspect_motion_correction, plot_params, save_estimates,
        save_CNMFE_estimates_filename, save_CNMFE_params, inline
            Accepted for old scripts; see :data:`ORIGINAL_ARGUMENTS_NOT_NEEDED`.
        **parameters
            Any other parameter by its analysis_parameters.csv name (``gSig=(4, 4)``,
            ``min_corr=0.85``, ``engine="native"``, ...).

        Returns
        -------
        PipelineResult

        Raises
        ------
        PipelineError
            For every handled failure (project files, raw data, parameters, a failed
            stage); its message names the stage, the line, the file and what to do.
        """
        t_start = time.perf_counter()
        line_num = int(line_num)
        _note_original_arguments({
            "parallel": parallel, "n_processes": n_processes, "inspect_motion_correction": inspect_motion_correction,
            "plot_params": plot_params, "save_estimates": save_estimates,
            "save_CNMFE_estimates_filename": save_CNMFE_estimates_filename, "save_CNMFE_params": save_CNMFE_params,
            "inline": inline})
        explicit = {
            "crop": crop, "crop_coords": crop_coords, "detrend_method": detrend_method, "df_over_f": df_over_f,
            "secs_window": secs_window, "quantile_min": quantile_min, "df_over_f_method": df_over_f_method,
            "apply_motion_correction": apply_motion_correction, "run_CNMFE": run_CNMFE,
            "find_calcium_events": find_calcium_events, "derivative_for_estimates": derivative_for_estimates,
            "event_height": event_height, "compute_miniscope_phase": compute_miniscope_phase,
            "filter_miniscope_data": filter_miniscope_data, "n": n, "cut": cut, "ftype": ftype, "btype": btype,
            "compute_miniscope_spectrogram": compute_miniscope_spectrogram, "window_length": window_length,
            "window_step": window_step, "freq_lims": freq_lims, "time_bandwidth": time_bandwidth, **parameters}
        setup = self._prepare(line_num, project_path, data_path, explicit, filenames, storage_root)
        project, session_dir, params, overrides, root = setup
        review = (not headless) and (remove_components_with_gui is None or bool(remove_components_with_gui))
        needs_crop_window = (not headless) and params.crop.enabled and params.crop.coords is None
        needs_review = review and params.cnmfe.enabled
        default_crop_window = needs_crop_window and self.crop_selector is None
        default_review_window = needs_review and self.component_reviewer is None
        if default_crop_window or default_review_window:
            self._check_windows_available(line_num, default_crop_window, default_review_window)
        log.info("line %d: %s -> outputs under %s%s", line_num, session_dir, root, " (headless)" if headless else "")

        from ace_assets.runner import get_instance

        instance = self.instance or get_instance()
        ctx = _RunContext(line_num=line_num, project=project, session_dir=session_dir, storage_root=root,
                          overrides=overrides, instance=instance, data_path=data_path)
        crop_used = params.crop.coords if params.crop.enabled else None
        if needs_crop_window:
            crop_used = self._choose_crop(ctx)  # ingests first, to show the raw movie
        elif filenames is not None:
            ctx.materialise(["raw_movie"])
        if filenames is not None:
            ctx.check_files_selected(len(filenames))
        ctx.materialise_remaining()
        curation_file = None
        if needs_review and "cnmfe_estimates" in ctx.metadata and CURATION_ASSET in ctx.metadata:
            curation_file = self._review(ctx)
        figures = write_figures(ctx.metadata, root / "figures" / str(line_num))
        outputs = {a: Path(m["path"]) for a, m in ctx.metadata.items() if isinstance(m.get("path"), str)}
        seconds = time.perf_counter() - t_start
        log.info("line %d: all stages done in %.1f s; outputs under %s, figures under %s", line_num, seconds, root,
                 root / "figures" / str(line_num))
        return PipelineResult(line_num=line_num, storage_root=root, outputs=outputs, figures=figures,
                              run_ids=tuple(ctx.run_ids), seconds=seconds, step_seconds=dict(ctx.step_seconds),
                              crop_coords=crop_used, curation_file=curation_file,
                              metadata={k: dict(v) for k, v in ctx.metadata.items()})

    # -- steps ------------------------------------------------------------------------------
    @staticmethod
    def _prepare(line_num, project_path, data_path, explicit, filenames, storage_root):
        """Read the project, find the session, validate every parameter: before any compute."""
        project_path = project_path or os.environ.get("ACE_PROJECT_PATH")
        data_path = data_path or os.environ.get("ACE_DATA_PATH") or None
        if not project_path:
            raise PipelineError("no project path given", stage="project", line_num=line_num,
                                hint="pass --project-path (project_path=...) or set ACE_PROJECT_PATH to the folder "
                                     "holding experiments.csv and analysis_parameters.csv.")
        try:
            project = Project.load(project_path, data_path)
            project.experiment(line_num)
            session_dir = project.session_dir(line_num)
        except ProjectError as exc:
            file = getattr(exc, "file", None) or Path(project_path) / "experiments.csv"
            raise PipelineError(str(exc), stage="project", line_num=line_num, file=file,
                                error_class=type(exc).__name__,
                                hint=f"correct {Path(file).name} (or the --line-num / --data-path given), then "
                                     f"run again.") from exc
        try:
            overrides = parameter_overrides(explicit)
            build_pipeline_params(overrides, source="the arguments given")
        except ParameterError as exc:
            raise PipelineError(str(exc), stage="parameters", line_num=line_num, file="(the arguments given)",
                                error_class="ParameterError",
                                hint="correct the argument (CLI --set NAME=VALUE or run(NAME=...)), then run "
                                     "again.") from exc
        try:
            params = project.params(line_num, overrides=overrides)
        except (ParameterError, ProjectError) as exc:
            row = project.parameter_row_lines.get(line_num)
            raise PipelineError(str(exc), stage="parameters", line_num=line_num,
                                file=f"{project.parameters_file}" + (f" (row {row})" if row else ""),
                                error_class=type(exc).__name__,
                                hint="fix the value in analysis_parameters.csv, or the argument given, then run "
                                     "again.") from exc
        try:
            info = open_recording(session_dir, filenames=filenames).info
        except ReaderError as exc:
            raise PipelineError(str(exc), stage="raw data", line_num=line_num, file=session_dir,
                                error_class=type(exc).__name__,
                                hint="check the session folder holds a complete recording in a supported format "
                                     "(see README, 'Raw formats'), then run again.") from exc
        if params.crop.enabled and params.crop.coords is not None:
            try:
                crop_box_from_coords(params.crop.coords, (info.height, info.width))
            except CropError as exc:
                source = "the crop_coords argument" if "crop_coords" in overrides else \
                    f"{project.parameters_file} (row {project.parameter_row_lines.get(line_num, '?')})"
                raise PipelineError(str(exc), stage="cropped_movie", line_num=line_num, file=source,
                                    error_class="CropError",
                                    hint="give crop corners inside the frame (x in [0, width], y in [0, height], "
                                         "origin bottom-left), or leave crop_coords empty to choose them in the "
                                         "crop window.") from exc
        if filenames is not None:
            overrides["filenames"] = tuple(str(f) for f in filenames)
        root = resolve_storage_root(storage_root, session_dir)
        return project, session_dir, params, overrides, root

    @staticmethod
    def _check_windows_available(line_num: int, crop_window: bool, review_window: bool) -> None:
        from ace_neuro.interactive import InteractiveUnavailableError, interactive_pyplot

        try:
            interactive_pyplot()
        except InteractiveUnavailableError as exc:
            which = " and ".join(w for w, on in (("crop", crop_window), ("component review", review_window)) if on)
            raise PipelineError(str(exc), stage="interactive", line_num=line_num,
                                error_class="InteractiveUnavailableError",
                                hint=f"the {which} window cannot open here. Run with --headless, or give "
                                     f"--crop-coords and --no-review.") from exc

    def _choose_crop(self, ctx: "_RunContext") -> tuple[int, int, int, int] | None:
        """Ingest, then show the crop window on the raw movie's projections; save the choice."""
        from ace_neuro import storage
        from ace_neuro.stages.crop import compute_projections

        ctx.materialise(["raw_movie"])
        movie = storage.open_movie(ctx.metadata["raw_movie"]["path"])
        log.info("line %d: computing projections for the crop window", ctx.line_num)
        p = compute_projections(movie.frames, n_frames=min(movie.n_frames, 1000))
        projections = {"max": p.max, "mean": p.mean, "std": p.std, "median": p.median}
        selector = self.crop_selector
        if selector is None:
            from ace_neuro.interactive.crop_window import select_crop as selector
        choice = selector(projections, kind="max", coords=None,
                          title=f"line {ctx.line_num}: drag a rectangle to crop")
        if choice.coords is None:
            log.info("line %d: no crop chosen; the movie is not cropped", ctx.line_num)
            ctx.overrides["crop"] = False
            return None
        path = save_crop_coords(ctx.project.project_path, ctx.line_num, choice.coords)
        log.info("line %d: crop_coords %s saved to %s", ctx.line_num, tuple(choice.coords), path)
        ctx.overrides.pop("crop", None)
        return tuple(int(c) for c in choice.coords)

    def _review(self, ctx: "_RunContext") -> Path | None:
        """Show the review window on CNMF-E's components; save the curation and re-run downstream."""
        from ace_neuro.interactive.review_window import load_review_inputs

        inputs = load_review_inputs(ctx.metadata["cnmfe_estimates"]["path"], ctx.metadata[CURATION_ASSET]["path"],
                                    curation_file=curation_file(ctx.project.project_path, ctx.line_num))
        reviewer = self.component_reviewer
        if reviewer is None:
            from ace_neuro.interactive.review_window import review_components as reviewer
        outcome = reviewer(inputs, title=f"line {ctx.line_num}: accept or reject components")
        if outcome is None or not outcome.saved:
            log.info("line %d: review closed without saving; the automatic selection stands", ctx.line_num)
            return None
        log.info("line %d: curation saved to %s (%d rejected, %d restored); updating the downstream assets",
                 ctx.line_num, outcome.path, len(outcome.curation["rejected"]), len(outcome.curation["restored"]))
        ctx.materialise(ctx.downstream_of(CURATION_ASSET))
        return outcome.path


@dataclass
class _RunContext:
    """One call's state: where things are, what ran, and how to run more of the graph."""

    line_num: int
    project: Project
    session_dir: Path
    storage_root: Path
    overrides: dict[str, Any]
    instance: Any
    data_path: Any
    run_ids: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)

    def materialise(self, selection: Sequence[str] | None) -> None:
        """Run the graph (or ``selection``, asset names) for the line; raise PipelineError on failure."""
        from ace_assets.runner import fail_dead_runs, materialize_lines

        for run_id in fail_dead_runs(self.instance):
            log.warning("run %s was left unfinished by a killed process: marked failed, its pool slots freed",
                        run_id)
        what = "every stage" if selection is None else (
            ", ".join(selection) if len(selection) <= 4 else f"{len(selection)} stages")
        log.info("line %d: running %s", self.line_num, what)
        with _StageProgress(self.instance, self.line_num):
            (run,) = materialize_lines(
                [self.line_num], project_path=str(self.project.project_path),
                data_path=None if self.project.data_path is None else str(self.project.data_path),
                storage_root=str(self.storage_root), overrides=dict(self.overrides), instance=self.instance,
                selection=None if selection is None else list(selection), run_config=QUIET_DAGSTER)
        self.run_ids.append(run.run_id)
        self.step_seconds.update(run.step_seconds)
        self.metadata.update(run.metadata)
        if not run.success:
            raise self._failure(run)

    def materialise_remaining(self) -> None:
        """Run every asset not yet materialised by this call (all of them on a first call)."""
        from ace_assets.definitions import all_assets

        names = [k.to_user_string() for a in all_assets() for k in a.keys]
        remaining = [n for n in names if n not in self.metadata]
        if not self.metadata:
            self.materialise(None)
        elif remaining:
            self.materialise(remaining)

    def _failure(self, run) -> PipelineError:
        """The error to raise for a failed run; a run stopped by Ctrl-C raises KeyboardInterrupt."""
        from ace_assets.runner import step_failures, was_interrupted

        failures = step_failures(self.instance, run.run_id)
        if was_interrupted(failures):
            raise KeyboardInterrupt
        if not failures:
            return PipelineError(run.error or "the run failed before any stage started", stage="run",
                                 line_num=self.line_num, file=self.session_dir, run_id=run.run_id,
                                 hint="run again with --debug, or open the run in the Dagster UI.")
        step, cls, message = failures[0]
        file, hint = _error_hint(cls, step, self.project, self.line_num, self.session_dir, self.storage_root)
        return PipelineError(message, stage=step, line_num=self.line_num, file=file, hint=hint, run_id=run.run_id,
                             error_class=cls)

    def check_files_selected(self, n_files: int) -> None:
        """Fail loudly if the ingest read other video files than the ``filenames`` asked for."""
        read = self.metadata.get("raw_movie", {}).get("video_files")
        if read is not None and int(read) != n_files:
            raise PipelineError(f"{n_files} video file(s) were selected with filenames but the raw movie was read "
                                f"from {read}", stage="raw_movie", line_num=self.line_num, file=self.session_dir,
                                hint="this installation's raw_movie asset does not honour filenames; run without "
                                     "--filenames (every video of the session is read).")

    def downstream_of(self, asset: str) -> list[str]:
        """``asset`` and every asset below it in the graph."""
        from ace_assets.definitions import all_assets

        children: dict[str, set[str]] = {}
        for a in all_assets():
            for key in a.keys:
                for dep in a.asset_deps.get(key, ()):
                    children.setdefault(dep.to_user_string(), set()).add(key.to_user_string())
        out, todo = [], [asset]
        while todo:
            name = todo.pop()
            if name not in out:
                out.append(name)
                todo.extend(sorted(children.get(name, ())))
        return out


# --------------------------------------------------------------------------- command line
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
    parser.add_argument("--line-num", type=int, required=True, help="the session's 'line number' in experiments.csv")
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
                        metavar="NAME=VALUE", help="any analysis_parameters.csv parameter, e.g. --set 'gSig=(4, 4)'")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    return parser


class _RelayedDuringRuns(logging.Filter):
    """While a run executes, library warnings come through the run's relay (named by stage), not directly."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (RUN_IN_PROGRESS.is_set() and record.levelno < logging.ERROR
                    and not record.name.startswith("ace_neuro.pipelines"))


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
    logging.getLogger("ace_neuro.pipelines").setLevel(logging.WARNING if quiet else logging.INFO)
    # Dagster flags some of the APIs the assets use as beta; that is for developers, not for this terminal
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
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
    """The command line; returns the exit status (0 success, 1 handled error, 130 interrupted; argparse exits 2)."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.quiet)
    if args.headless:
        import matplotlib

        matplotlib.use("Agg")  # figures go to files; nothing may try to open a window
    try:
        MiniscopePipeline().run(**run_arguments(args))
    except (PipelineError, ProjectError, ReaderError, ParameterError) as exc:
        if args.debug:
            raise
        if isinstance(exc, PipelineError):
            log.error("%s", exc.message())
        else:
            log.error("%s", PipelineError(str(exc), stage="setup", line_num=args.line_num,
                                          error_class=type(exc).__name__,
                                          hint="correct the file or argument named above, then run again.").message())
        return 1
    except KeyboardInterrupt:
        log.error("line %d: interrupted; finished stages are stored, unfinished ones left nothing behind.",
                  args.line_num)
        return 130
    return 0


if __name__ == "__main__":
    # run the copy imported under its package name, so its classes are the ones users catch
    from ace_neuro.pipelines.miniscope import main as _main

    sys.exit(_main())
