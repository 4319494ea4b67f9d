"""The lab's front ends: CLI (in a subprocess) and MiniscopePipeline.run, on a tiny synthetic project."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from ace_neuro.pipelines.miniscope import (MiniscopePipeline, PipelineError, build_parser, parameter_overrides,
                                           resolve_storage_root, run_arguments)
from ace_neuro.params import ParameterError
from ace_neuro.project import Project
from ace_neuro.synthetic.formats import corrupt_video
from ace_neuro.synthetic.project import write_demo_project
from procs import cli_args, long_demo, wait_for_text  # noqa: E402  (tests/ is on sys.path under pytest)

GUI_MODULES = ("tkinter", "_tkinter", "PyQt5", "PyQt6", "PySide2", "PySide6", "wx", "gi",
               "matplotlib.backends.backend_qtagg", "matplotlib.backends.backend_qt", "matplotlib.backends.backend_tkagg",
               "matplotlib.backends._backend_tk", "matplotlib.backends.backend_gtk3agg", "matplotlib.backends.backend_wxagg",
               "matplotlib.backends.backend_macosx")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    return write_demo_project(tmp_path_factory.mktemp("demo") / "demo", lines=[96, 97], height=48, width=56,
                              n_frames=120, frames_per_file=50, seed=2)


@pytest.fixture
def demo(tmp_path, demo_template):
    """A fresh copy of the tiny demo project (outputs default to the session folders)."""
    out = tmp_path / "demo"
    shutil.copytree(demo_template.project_path.parent, out)
    return out / "project", out / "data"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    for name in ("ACE_STORAGE_ROOT", "ACE_PROJECT_PATH", "ACE_DATA_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))


def run_cli(args, *, env_home):
    """Run the CLI as ``python -m`` would, then report the GUI modules it loaded (JSON on the last line)."""
    code = textwrap.dedent(f"""
        import json, runpy, sys
        sys.argv = ["ace_neuro.pipelines.miniscope", *{list(map(str, args))!r}]
        try:
            runpy.run_module("ace_neuro.pipelines.miniscope", run_name="__main__")
            status = 0
        except SystemExit as exc:
            status = exc.code
        gui = sorted(m for m in sys.modules if m in {GUI_MODULES!r} or m.split(".")[0] in {GUI_MODULES!r})
        import matplotlib
        print(json.dumps({{"gui": gui, "backend": matplotlib.get_backend()}}))
        sys.exit(status)
    """)
    env = {**os.environ, "DAGSTER_HOME": str(env_home)}
    env.pop("MPLBACKEND", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=600)


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def session_of(project, line):
    return Project.load(project, project.parent / "data").session_dir(line)


# --------------------------------------------------------------------------- command line (subprocess)
def test_cli_headless_runs_every_stage_without_gui(demo, tmp_path):
    from ace_assets.definitions import all_assets

    project, data = demo
    r = run_cli(["--line-num", 96, "--project-path", project, "--data-path", data, "--headless"],
                env_home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    report = last_json(r.stdout)
    assert report["gui"] == [] and report["backend"].lower() == "agg"
    assert "Traceback" not in r.stderr
    # progress: one start and one end line (with seconds) per stage
    for asset in ("raw_movie", "cropped_movie"):
        assert f"line 96: {asset} started" in r.stderr
        assert f"line 96: {asset} done in" in r.stderr
    # outputs under the session's saved_movies folder, one per asset, keyed by the line
    saved = session_of(project, 96) / "saved_movies"
    for a in all_assets():
        for key in a.keys:
            name = key.path[-1]
            assert list((saved / name).glob("96.*")), f"{name} not stored under {saved}"
    pngs = sorted((saved / "figures" / "96").glob("*.png"))
    assert any(p.name == "raw_movie.png" for p in pngs)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_cli_handled_errors_are_one_message_and_status_1(demo, tmp_path):
    project, data = demo
    r = run_cli(["--line-num", 5, "--project-path", project, "--data-path", data, "--headless"],
                env_home=tmp_path / "home")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert "line 5" in errors[0] and "stage 'project'" in errors[0] and "line numbers found: 96, 97" in errors[0]
    assert f"file: {project / 'experiments.csv'}" in r.stderr and "what to do:" in r.stderr


def test_cli_failed_stage_names_stage_line_file_and_fix(demo, tmp_path):
    project, data = demo
    video = session_of(project, 97) / "Miniscope" / "1.avi"
    corrupt_video(video, video.stat().st_size // 2)  # header and first frames fine: fails mid-ingest
    r = run_cli(["--line-num", 97, "--project-path", project, "--data-path", data, "--headless"],
                env_home=tmp_path / "home")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "stage 'raw_movie' failed" in line]
    assert len(errors) == 1, r.stderr
    assert "line 97" in errors[0] and "(raw data error)" in errors[0] and str(video) in errors[0]
    assert "what to do: check that the session folder" in r.stderr
    assert "Not executing" not in r.stderr  # the stages skipped after the failure are counted, not listed
    assert "later stages and checks were not run" in r.stderr


# --------------------------------------------------------------------------- arguments and defaults
def test_cli_and_api_share_defaults():
    args = build_parser().parse_args(["--line-num", "96", "--project-path", "P"])
    kwargs = run_arguments(args)
    assert kwargs == {"line_num": 96, "project_path": "P", "data_path": None, "headless": False,
                      "storage_root": None, "filenames": None}  # everything else: the API's own defaults
    args = build_parser().parse_args(["--line-num", "96", "--set", "gSig=(4, 4)", "--set", "min_corr=0.85",
                                      "--set", "pw_rigid=TRUE", "--crop-coords", "1", "20", "30", "2", "--no-review"])
    kwargs = run_arguments(args)
    assert kwargs["gSig"] == (4, 4) and kwargs["min_corr"] == 0.85 and kwargs["pw_rigid"] is True
    assert kwargs["crop_coords"] == (1, 20, 30, 2) and kwargs["remove_components_with_gui"] is False
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--line-num", "96", "--crop-coords", "1", "2", "3", "4", "--no-crop"])


def test_parameter_overrides_are_checked_by_name():
    assert parameter_overrides({"gSig": [4, 4], "min_corr": None, "crop": False}) == {"gSig": (4, 4), "crop": False}
    with pytest.raises(ParameterError, match="Did you mean .*'gSig'"):
        parameter_overrides({"gSgi": (3, 3)})


def test_explicit_arguments_win_over_csv_which_wins_over_defaults(demo):
    project, data = demo
    # the demo CSV sets min_corr 0.8 and event_height 5 and leaves secs_window empty
    _, _, params, overrides, _ = MiniscopePipeline._prepare(96, project, data, {"min_corr": 0.9}, None, None)
    assert params.cnmfe.min_corr == 0.9  # argument
    assert params.events.event_height == 5.0  # CSV
    assert params.dff.secs_window == 5.0  # default
    assert overrides == {"min_corr": 0.9}


def test_storage_root_order(tmp_path, monkeypatch):
    session = tmp_path / "session"
    assert resolve_storage_root(None, session) == (session / "saved_movies").resolve()
    monkeypatch.setenv("ACE_STORAGE_ROOT", str(tmp_path / "env_root"))
    assert resolve_storage_root(None, session) == (tmp_path / "env_root").resolve()
    assert resolve_storage_root(tmp_path / "arg", session) == (tmp_path / "arg").resolve()


def test_figures_are_written_as_png_and_previewed_inline(tmp_path):
    import base64
    from types import SimpleNamespace

    from dagster import AssetKey
    from ace_neuro.plots.common import new_figure
    from resources.figures import FigureStore

    fig = new_figure(2, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    context = SimpleNamespace(asset_key=AssetKey("calcium_events"), partition_key="96")
    md = FigureStore(base_path=str(tmp_path)).preview(context, "raster", fig).value
    png = (tmp_path / "figures" / "96" / "calcium_events_raster.png").read_bytes()
    assert png.startswith(b"\x89PNG") and base64.b64encode(png).decode() in md
    assert not list((tmp_path / "figures" / "96").glob(".*"))  # no temporary left


# --------------------------------------------------------------------------- Python API (in process)
def test_api_headless_run_outputs_per_line_never_overwritten(demo, tmp_path):
    project, data = demo
    root = tmp_path / "outputs"
    pipe = MiniscopePipeline()
    first = pipe.run(line_num=96, project_path=project, data_path=data, headless=True, storage_root=root,
                     crop_coords=(4, 44, 52, 4))
    assert first.storage_root == root.resolve() and first.crop_coords == (4, 44, 52, 4)
    assert first.outputs["raw_movie"] == root.resolve() / "raw_movie" / "96.zarr"
    assert first.metadata["cropped_movie"]["shape"][1:] == [40, 48]  # the explicit crop reached the asset
    assert set(first.step_seconds) >= {"raw_movie", "cropped_movie"}
    assert first.figures["raw_movie"].is_file()
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("96*")}
    second = pipe.run(line_num=97, project_path=project, data_path=data, headless=True, storage_root=root)
    assert second.outputs["raw_movie"] == root.resolve() / "raw_movie" / "97.zarr"
    assert {p: p.stat().st_mtime_ns for p in root.rglob("96*")} == stamps  # line 96 untouched
    assert not (session_of(project, 96) / "saved_movies").exists()


def test_api_failure_raises_pipeline_error_with_fields(demo):
    project, data = demo
    with pytest.raises(PipelineError) as info:
        MiniscopePipeline().run(line_num=96, project_path=project, data_path=data, headless=True,
                                crop_coords=(0, 0, 500, 10))
    err = info.value
    assert err.stage == "parameters" and err.line_num == 96 and err.error_class == "CropError"
    assert err.category == "parameters" and err.parameter == "crop_coords"
    assert "48 x 56" in err.problem and err.file == "(the arguments given)" and "inside the frame" in err.hint


def _drive_crop_window(coords_drag, *, press="Crop"):
    """A crop selector that draws the real window on an Agg figure and drags a rectangle with mouse events."""
    from matplotlib.backend_bases import MouseEvent
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ace_neuro.interactive.crop_window import CropSelectorModel, CropWindow

    calls = []

    def selector(projections, *, kind, coords, title):
        model = CropSelectorModel(projections, kind=kind, coords=coords)
        fig = Figure(figsize=(9, 6))
        FigureCanvasAgg(fig)
        win = CropWindow(model, fig, title=title)
        fig.canvas.draw()

        def send(name, x, y):
            fig.canvas.callbacks.process(name, MouseEvent(name, fig.canvas, x, y, button=1))

        (x0, y0), (x1, y1) = (win.ax_image.transData.transform(p) for p in coords_drag)
        send("button_press_event", x0, y0)
        send("motion_notify_event", x1, y1)
        send("button_release_event", x1, y1)
        button = win.crop_button if press == "Crop" else win.no_crop_button
        bb = button.ax.get_window_extent()
        send("button_press_event", (bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2)
        send("button_release_event", (bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2)
        calls.append((sorted(projections), model.image.shape))
        return model.choice

    return selector, calls


def test_interactive_crop_is_saved_to_the_csv_and_used(demo, tmp_path):
    project, data = demo
    selector, calls = _drive_crop_window(((10.2, 40.1), (45.8, 9.7)))
    result = MiniscopePipeline(crop_selector=selector).run(
        line_num=96, project_path=project, data_path=data, headless=False, storage_root=tmp_path / "out",
        remove_components_with_gui=False)
    assert calls == [(["max", "mean", "median", "std"], (48, 56))]
    assert result.crop_coords == (10, 40, 46, 10)
    assert Project.load(project, data).params(96).crop.coords == (10, 40, 46, 10)  # saved, reads back
    assert result.metadata["cropped_movie"]["shape"][1:] == [30, 36]  # rows 8..37, columns 10..45
    assert len(result.run_ids) == 2  # ingest for the window, then the rest of the graph


@pytest.mark.slow
def test_interactive_cancel_means_no_crop_and_csv_untouched(demo, tmp_path):
    project, data = demo
    before = (project / "analysis_parameters.csv").read_bytes()
    selector, calls = _drive_crop_window(((10, 40), (45, 10)), press="No crop")
    result = MiniscopePipeline(crop_selector=selector).run(
        line_num=96, project_path=project, data_path=data, storage_root=tmp_path / "out",
        remove_components_with_gui=False)
    assert len(calls) == 1 and result.crop_coords is None
    assert (project / "analysis_parameters.csv").read_bytes() == before
    assert result.metadata["cropped_movie"]["cropped"] is False
    assert result.metadata["cropped_movie"]["shape"][1:] == [48, 56]


def test_review_window_curation_is_saved_and_downstream_rerun(demo, tmp_path):
    from matplotlib.backend_bases import MouseEvent
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ace_neuro.interactive.review_window import ReviewWindow, review_model_for
    from ace_neuro.project import curation_file
    from ace_neuro.stages.evaluation import load_curation

    project, data = demo
    seen = []

    def reviewer(inputs, *, title):
        """Reject the first accepted component with the window's own button, then Save."""
        model = review_model_for(inputs)
        fig = Figure(figsize=(12, 7))
        FigureCanvasAgg(fig)
        outcomes = []
        win = ReviewWindow(model, inputs, fig, on_finish=outcomes.append, title=title)
        fig.canvas.draw()
        target = model.accepted_ids[0]
        model.select(target)

        def click(ax):
            bb = ax.get_window_extent()
            for name in ("button_press_event", "button_release_event"):
                fig.canvas.callbacks.process(name, MouseEvent(name, fig.canvas, (bb.x0 + bb.x1) / 2,
                                                              (bb.y0 + bb.y1) / 2, button=1))

        click(win.toggle_button.ax)
        click(win.save_button.ax)
        seen.append((target, len(inputs.component_ids)))
        return outcomes[0]

    result = MiniscopePipeline(component_reviewer=reviewer).run(
        line_num=96, project_path=project, data_path=data, storage_root=tmp_path / "out", crop_coords=(4, 44, 52, 4))
    (target, k), = seen
    assert result.curation_file == curation_file(project, 96) and load_curation(result.curation_file).rejected == (target,)
    table = result.metadata["accepted_components"]
    assert table["manually_rejected"] == 1 and table["n_components"] == k
    assert len(result.run_ids) == 2  # the graph, then accepted_components and what depends on it
    stored = pd.read_parquet(result.outputs["accepted_components"])
    assert not stored.loc[stored["component_id"] == target, "accepted"].item()
    assert stored.loc[stored["component_id"] == target, "reason"].item().startswith("manual: rejected")


def test_interactive_without_display_fails_before_any_work(demo, tmp_path):
    project, data = demo
    with pytest.raises(PipelineError) as info:
        MiniscopePipeline().run(line_num=96, project_path=project, data_path=data, storage_root=tmp_path / "out")
    assert info.value.stage == "interactive" and "--headless" in info.value.hint
    assert not (tmp_path / "out").exists()


def test_filenames_that_match_no_video_fail_up_front(demo, tmp_path):
    project, data = demo
    with pytest.raises(PipelineError) as info:
        MiniscopePipeline().run(line_num=96, project_path=project, data_path=data, headless=True,
                                storage_root=tmp_path / "out", filenames=["0.avi", "nope.avi"])
    assert info.value.stage == "raw data" and "nope.avi" in info.value.problem and "0.avi" in info.value.problem
    assert not (tmp_path / "out").exists()


def _signal_cli_during_motion(args, env, log_path, sig) -> int:
    """Start the CLI, send ``sig`` once motion correction has started; its exit status."""
    with open(log_path, "w") as log:
        child = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        try:
            wait_for_text(log_path, "motion_corrected_movie started", child)
            child.send_signal(sig)
            return child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_exits_130_and_says_what_is_kept(tmp_path):
    """A real SIGINT while a stage runs: exit 130, the documented message, no Dagster error noise."""
    import signal

    demo = long_demo(tmp_path / "demo")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    log_path = tmp_path / "cli.log"
    status = _signal_cli_during_motion(cli_args(demo, tmp_path / "out"), env, log_path, signal.SIGINT)
    text = log_path.read_text()
    assert status == 130, text
    assert "interrupted; finished stages are stored" in text
    assert "unexpected" not in text and "DagsterExecutionInterruptedError" not in text


def test_duplicate_line_in_the_parameters_file_names_that_file(demo, tmp_path):
    project, data = demo
    par = project / "analysis_parameters.csv"
    lines = par.read_text().splitlines(keepends=True)
    row96 = next(line for line in lines if line.startswith("96,"))
    par.write_text("".join(lines) + row96)
    with pytest.raises(PipelineError) as info:
        MiniscopePipeline().run(line_num=96, project_path=project, data_path=data, headless=True,
                                storage_root=tmp_path / "out")
    err = info.value
    assert err.stage == "project" and Path(err.file) == par
    assert "appears twice" in err.problem and "analysis_parameters.csv" in err.hint
    assert "experiments.csv" not in err.hint


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_run_does_not_block_the_next_one(tmp_path):
    """SIGKILL a CLI run while it holds the only 'heavy' slot; the next run must not wait for it."""
    import signal

    from dagster import DagsterInstance, DagsterRunStatus

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")  # pool 'heavy' limited to 1 slot
    demo = long_demo(tmp_path / "demo")
    args = cli_args(demo, tmp_path / "out")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    _signal_cli_during_motion(args, env, tmp_path / "first.log", signal.SIGKILL)
    second = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "left unfinished by a killed process" in second.stdout + second.stderr
    with DagsterInstance.from_config(str(home)) as instance:
        statuses = {r.dagster_run.status for r in instance.get_run_records()}
    assert DagsterRunStatus.FAILURE in statuses and DagsterRunStatus.SUCCESS in statuses
