"""The lab's Python API, ``MiniscopePipeline().run(line_num=96, ...)``, over the Dagster asset graph.

It runs the same assets as the UI, for one experiment line, through
:func:`ace_assets.runner.materialize_lines`. One set of defaults serves the API and the
command line (:mod:`ace_assets.cli`): a parameter not given is "not given", so the line's
row of analysis_parameters.csv decides, and where that cell is empty the declared
default applies (:mod:`ace_neuro.params`). Explicit arguments win over the CSV.

Before any compute it reads the project, validates every parameter, opens the recording
and runs every check that needs only its size, length and frame rate
(:func:`ace_neuro.stages.preflight.check_before_compute`). Every failure is raised as one
:class:`PipelineError`, whose category (:mod:`ace_neuro.errors`) chooses the file to
look at and the fix.

Outputs go to ``<storage root>/<asset>/<line>.zarr|.parquet`` where the storage root is,
in order: ``storage_root=`` / ``--storage-root``, the ``ACE_STORAGE_ROOT`` environment
variable, or ``<session folder>/saved_movies``. The assets write their figures as PNG
under ``<storage root>/figures/<line>/``.

Headless, no window opens and no GUI toolkit is imported. Otherwise a crop window
opens when the line has no ``crop_coords`` (the choice is saved to
``analysis_parameters.csv``), and a component review window opens after CNMF-E (the
choice is saved to the line's curation file and the downstream assets are re-run).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import posixpath
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ace_neuro import storage
from ace_neuro.errors import ErrorReport, user_errors_as
from ace_neuro.params import ParameterLayer, all_declarations, build_pipeline_params, check_parameter_names
from ace_neuro.project import Project, curation_file, save_crop_coords
from ace_neuro.readers import open_recording
from ace_neuro.stages.preflight import RecordingShape, check_before_compute

from .graph import all_assets, downstream_of
from .progress import StageProgress
from .runner import fail_dead_runs, get_instance, materialize_lines, step_failures, was_interrupted

log = logging.getLogger("ace_assets.pipeline")

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
CURATION_ASSET = "accepted_components"  # what the review window shows
CURATION_SNAPSHOT = "component_curation"  # what it changes: re-read, then everything below it re-runs
#: Dagster's own console logger is silenced; stage progress and warnings are logged by StageProgress.
QUIET_DAGSTER = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class _Where:
    """Where a line's files are, to name the one at fault for each category of error."""

    project: Project | None
    line_num: int
    session_dir: Path | None = None
    storage_root: Path | None = None

    def default_file(self, category: str) -> str:
        if category == "parameters" and self.project is not None:
            row = self.project.parameter_row_lines.get(self.line_num)
            return f"{self.project.parameters_file}" + (f" (row {row})" if row else "")
        if category == "project" and self.project is not None:
            return str(self.project.experiments_file)
        if category == "environment" and self.storage_root is not None:
            return str(self.storage_root)
        return "" if self.session_dir is None else str(self.session_dir)


class PipelineError(RuntimeError):
    """A run that could not complete, described for a person.

    Attributes
    ----------
    problem : str
        What went wrong.
    stage : str
        Where it stopped (``"project"``, ``"parameters"``, ``"raw data"`` or an asset name).
    line_num : int
    category : str
        The kind of problem (:data:`ace_neuro.errors.CATEGORIES`): ``project``, ``parameters``,
        ``raw data``, ``environment`` or ``internal`` (our own bug).
    file : str
        The file or folder to look at (with its row, when known).
    parameter : str
        The parameter at fault, when there is one.
    hint : str
        What to do about it.
    run_id : str
        The Dagster run, when one was started ("" otherwise).
    error_class : str
        The underlying error's class, for reports.
    """

    def __init__(self, problem: str, *, stage: str, line_num: int, category: str = "internal",
                 file: str | os.PathLike = "", parameter: str = "", hint: str = "", run_id: str = "",
                 error_class: str = ""):
        self.problem = str(problem).strip()
        self.stage = stage
        self.line_num = int(line_num)
        self.category = category
        self.file = str(file)
        self.parameter = parameter or ""
        self.hint = hint
        self.run_id = run_id
        self.error_class = error_class
        super().__init__(self.message())

    @classmethod
    def from_report(cls, report: ErrorReport, *, stage: str, line_num: int, where: _Where,
                    run_id: str = "") -> "PipelineError":
        file = report.file or where.default_file(report.category)
        if report.file and report.row:
            file = f"{file} (row {report.row})"
        hint = report.fix
        if report.category == "internal":
            hint = (f"this is unexpected in stage '{stage}' (a bug). Run again with --debug for the full traceback, "
                    f"or open the run in the Dagster UI, and report it with the recording if it persists.")
        return cls(report.problem, stage=stage, line_num=line_num, category=report.category, file=file,
                   parameter=report.parameter or "", hint=hint, run_id=run_id, error_class=report.error_class)

    def message(self) -> str:
        what = "a bug" if self.category == "internal" else f"{self.category} error"
        lines = [f"line {self.line_num}: stage '{self.stage}' failed ({what}): {self.problem}"]
        if self.file:
            lines.append(f"  file: {self.file}")
        if self.parameter:
            lines.append(f"  parameter: {self.parameter}")
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
    storage_root : Path or str
        Where the outputs are (``<root>/<asset>/<line>.zarr|.parquet``); a URL string for an object-store root,
        whose paths below are URLs too (read them with ``ace_neuro.storage``).
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
    """Explicit parameters (CSV names) that were given, checked against the declared names.

    ``None`` means "not given" and is dropped. ``crop=False`` disables the crop stage.

    Raises
    ------
    ParameterError
        For a name the platform does not know (with the closest known names).
    """
    return check_parameter_names(values)


def resolve_storage_root(storage_root: str | os.PathLike | None, session_dir: Path) -> Path | str:
    """``storage_root``, else ``$ACE_STORAGE_ROOT``, else ``<session folder>/saved_movies``; a URL
    (``s3://bucket/root``) is kept as it is."""
    for given in (storage_root, os.environ.get("ACE_STORAGE_ROOT", "").strip()):
        if given and storage.is_url(given):
            return storage.as_location(given)
        if given:
            return storage.local_path(given).expanduser().resolve()
    return (session_dir / "saved_movies").resolve()


def _note_original_arguments(given: Mapping[str, Any]) -> None:
    for name, value in given.items():
        if value is not None:
            log.info("argument %s=%r is accepted for compatibility: %s", name, value,
                     ORIGINAL_ARGUMENTS_NOT_NEEDED[name])



# --------------------------------------------------------------------------- the pipeline
CropSelector = Callable[..., Any]
ComponentReviewer = Callable[..., Any]


def _parameter_docs() -> str:
    lines = []
    for decl in all_declarations():
        if decl.field == "use_suggested" and decl.stage != "motion":
            continue  # one parameter, read by two stages
        lines.append(f"        {decl.name} ({decl.stage}, default {decl.default_text()}): {decl.help}")
    return "\n".join(lines)


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
            remove_components_with_gui: bool | None = None, **parameters: Any) -> PipelineResult:
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
        remove_components_with_gui : bool, optional
            Open the component review window after CNMF-E (default: yes unless headless).
        **parameters
            Any parameter by its analysis_parameters.csv name (listed below); ``None`` = not
            given: the CSV decides, then the default. The original API's arguments that this
            platform does not need (:data:`ORIGINAL_ARGUMENTS_NOT_NEEDED`) are accepted with a note.

        Returns
        -------
        PipelineResult

        Raises
        ------
        PipelineError
            For every handled failure (project files, raw data, parameters, a failed
            stage); its message names the category, the stage, the line, the file and what to do.

        Parameters by name
        ------------------
{parameters}
        """
        t_start = time.perf_counter()
        line_num = int(line_num)
        _note_original_arguments({k: parameters.pop(k) for k in list(parameters) if k in ORIGINAL_ARGUMENTS_NOT_NEEDED})
        setup = self._prepare(line_num, project_path, data_path, parameters, filenames, storage_root)
        project, session_dir, params, overrides, root = setup
        review = (not headless) and (remove_components_with_gui is None or bool(remove_components_with_gui))
        needs_crop_window = (not headless) and params.crop.enabled and params.crop.coords is None
        needs_review = review and params.cnmfe.enabled
        default_crop_window = needs_crop_window and self.crop_selector is None
        default_review_window = needs_review and self.component_reviewer is None
        if default_crop_window or default_review_window:
            self._check_windows_available(line_num, default_crop_window, default_review_window)
        log.info("line %d: %s -> outputs under %s%s", line_num, session_dir, root, " (headless)" if headless else "")

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
        curation = None
        if needs_review and "cnmfe_estimates" in ctx.metadata and CURATION_ASSET in ctx.metadata:
            curation = self._review(ctx)
        figures_dir = storage.join(root, "figures", str(line_num))
        figures = {p.stem if isinstance(p, Path) else posixpath.basename(p)[:-len(".png")]: p
                   for p in storage.list_files(figures_dir, ".png")}
        outputs = {a: storage.as_location(m["path"]) for a, m in ctx.metadata.items() if isinstance(m.get("path"), str)}
        seconds = time.perf_counter() - t_start
        log.info("line %d: all stages done in %.1f s; outputs under %s, figures under %s", line_num, seconds, root,
                 figures_dir)
        return PipelineResult(line_num=line_num, storage_root=root, outputs=outputs, figures=figures,
                              run_ids=tuple(ctx.run_ids), seconds=seconds, step_seconds=dict(ctx.step_seconds),
                              crop_coords=crop_used, curation_file=curation,
                              metadata={k: dict(v) for k, v in ctx.metadata.items()})

    run.__doc__ = run.__doc__.replace("{parameters}", _parameter_docs())

    # -- steps ------------------------------------------------------------------------------
    @staticmethod
    def _prepare(line_num, project_path, data_path, explicit, filenames, storage_root):
        """Read the project, find the session, validate every parameter and check them against the
        recording: everything that can be known before compute."""
        project_path = project_path or os.environ.get("ACE_PROJECT_PATH")
        data_path = data_path or os.environ.get("ACE_DATA_PATH") or None
        if not project_path:
            raise PipelineError("no project path given", stage="project", line_num=line_num, category="project",
                                hint="pass --project-path (project_path=...) or set ACE_PROJECT_PATH to the folder "
                                     "holding experiments.csv and analysis_parameters.csv.")
        project = session_dir = None
        stage = "project"

        def as_pipeline_error(report: ErrorReport) -> PipelineError:  # reads stage, project... as they are then
            if report.category == "parameters" and report.file is None and report.parameter in explicit:
                report = dataclasses.replace(report, file="(the arguments given)")
            return PipelineError.from_report(report, stage=stage, line_num=line_num,
                                             where=_Where(project, line_num, session_dir, None))

        with user_errors_as(as_pipeline_error):
            project = Project.load(project_path, data_path)
            project.experiment(line_num)
            session_dir = project.session_dir(line_num)
            stage = "parameters"
            overrides = parameter_overrides(explicit)
            build_pipeline_params([ParameterLayer(overrides, "the arguments given")])
            params = project.params(line_num, overrides=overrides)
            stage = "raw data"
            info = open_recording(session_dir, filenames=filenames).info
            stage = "parameters"
            check_before_compute(params, RecordingShape(info.height, info.width, info.n_frames, info.frame_rate))
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
            raise PipelineError(str(exc), stage="interactive", line_num=line_num, category=exc.category,
                                error_class=type(exc).__name__,
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
        ctx.materialise(downstream_of(CURATION_SNAPSHOT))
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
        for run_id in fail_dead_runs(self.instance):  # said here: during the run only stages speak
            log.warning("run %s was left unfinished by a killed process: marked failed, its pool slots freed",
                        run_id)
        what = "every stage" if selection is None else (
            ", ".join(selection) if len(selection) <= 4 else f"{len(selection)} stages")
        log.info("line %d: running %s", self.line_num, what)
        with StageProgress(self.instance, self.line_num), self._reported("run"):
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

    def _reported(self, stage: str):
        """A platform error raised outside any stage (the line is busy, the storage root is read-only) as a
        PipelineError."""
        where = _Where(self.project, self.line_num, self.session_dir, self.storage_root)
        return user_errors_as(lambda report: PipelineError.from_report(report, stage=stage, line_num=self.line_num,
                                                                       where=where))

    def materialise_remaining(self) -> None:
        """Run every asset not yet materialised by this call (all of them on a first call)."""
        names = [k.to_user_string() for a in all_assets() for k in a.keys]
        remaining = [n for n in names if n not in self.metadata]
        if not self.metadata:
            self.materialise(None)
        elif remaining:
            self.materialise(remaining)

    def _failure(self, run) -> PipelineError:
        """The error to raise for a failed run; a run stopped by Ctrl-C raises KeyboardInterrupt."""
        failures = step_failures(self.instance, run.run_id)
        if was_interrupted(failures):
            raise KeyboardInterrupt
        if not failures:
            return PipelineError(run.error or "the run failed before any stage started", stage="run",
                                 line_num=self.line_num, category="internal", file=self.session_dir,
                                 run_id=run.run_id, hint="run again with --debug, or open the run in the Dagster UI.")
        failure = failures[0]
        return PipelineError.from_report(failure.report, stage=failure.step, line_num=self.line_num,
                                         where=_Where(self.project, self.line_num, self.session_dir,
                                                      self.storage_root), run_id=run.run_id)

    def check_files_selected(self, n_files: int) -> None:
        """Fail loudly if the ingest read other video files than the ``filenames`` asked for."""
        read = self.metadata.get("raw_movie", {}).get("video_files")
        if read is not None and int(read) != n_files:
            raise PipelineError(f"{n_files} video file(s) were selected with filenames but the raw movie was read "
                                f"from {read}", stage="raw_movie", line_num=self.line_num, category="internal",
                                file=self.session_dir,
                                hint="this installation's raw_movie asset does not honour filenames; run without "
                                     "--filenames (every video of the session is read).")
