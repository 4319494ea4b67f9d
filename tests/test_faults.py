"""Faults and bad input as a user meets them: one message with its category, no hang, nothing half-written.

Races are two real processes; disks are a real full or read-only mount (tmpfs), skipped with the
reason where this machine cannot mount one.
"""
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ace_neuro.pipelines.miniscope import MiniscopePipeline, PipelineError
from ace_neuro.synthetic.project import write_demo_project
from procs import cli_args, long_demo, wait_for_text  # noqa: E402  (tests/ is on sys.path under pytest)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _home(monkeypatch, tmp_path):
    for name in ("ACE_STORAGE_ROOT", "ACE_PROJECT_PATH", "ACE_DATA_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """48 x 56 px, 120 frames at 30 fps (4 s): the demo's own CSV makes every stage possible."""
    return write_demo_project(tmp_path_factory.mktemp("tiny") / "demo", lines=[96], height=48, width=56,
                              n_frames=120, frames_per_file=50, seed=2)


# --------------------------------------------------------------------------- before compute
@pytest.mark.parametrize("given, parameter, words", [
    ({"cut": (0.1, 20.0)}, "cut", "Nyquist"),
    ({"window_length": 10.0}, "window_length", "shorter than one window"),
    ({"max_shifts": (30, 30)}, "max_shifts", "Reduce max_shifts"),
    ({"pw_rigid": True, "strides": (40, 40), "overlaps": (20, 20)}, "strides", "larger than the frame"),
    ({"pw_rigid": True, "strides": (24, 24), "overlaps": (24, 24)}, "overlaps", "smaller than strides"),
    ({"crop_coords": (0, 0, 500, 10)}, "crop_coords", "inside the frame"),
    ({"border_pix": 30}, "border_pix", "half the frame"),
])
def test_what_the_recording_reveals_is_reported_before_any_stage_runs(tiny, tmp_path, given, parameter, words):
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(PipelineError) as info:
            MiniscopePipeline(instance=instance).run(96, tiny.project_path, tiny.data_path, headless=True,
                                                     storage_root=tmp_path / "out", **given)
        assert instance.get_runs() == []  # nothing was computed
    err = info.value
    assert (err.category, err.stage, err.parameter) == ("parameters", "parameters", parameter)
    assert words in err.problem + err.hint and err.file == "(the arguments given)"
    assert not (tmp_path / "out").exists()


def test_a_csv_value_that_the_recording_rules_out_names_the_csv_row(tiny, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(tiny.project_path, project)
    par = project / "analysis_parameters.csv"
    text = par.read_text()
    assert text.count('"(0.1, 1.5)"') == 1  # the demo's cut cell
    par.write_text(text.replace('"(0.1, 1.5)"', '"(0.5, 40)"'))
    with pytest.raises(PipelineError) as info:
        MiniscopePipeline().run(96, project, tiny.data_path, headless=True, storage_root=tmp_path / "out")
    err = info.value
    assert err.category == "parameters" and err.parameter == "cut"
    assert err.file == f"{par} (row 2)" and "Nyquist" in err.problem


def test_an_engine_that_is_not_installed_is_an_environment_error_before_compute(tiny, tmp_path):
    with pytest.raises(PipelineError) as info:
        MiniscopePipeline().run(96, tiny.project_path, tiny.data_path, headless=True,
                                storage_root=tmp_path / "out", engine="caiman")
    err = info.value
    assert err.category == "environment" and "conda" in err.problem and "pip install caiman" in err.problem
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- one run per line
@pytest.mark.skipif(sys.platform == "win32", reason="the test waits on a child's log; POSIX paths")
def test_a_second_run_of_the_same_line_is_refused_and_names_the_first(tmp_path):
    demo = long_demo(tmp_path / "demo")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "ACE_PROGRESS_INTERVAL_S": "0.3"}
    out = tmp_path / "out"
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        first = subprocess.Popen(cli_args(demo, out), stdout=log, stderr=subprocess.STDOUT,
                                 cwd=REPO, env=env)
        try:
            wait_for_text(log_path, "motion_corrected_movie started", first)
            second = subprocess.run(cli_args(demo, out, "--crop-coords", "4", "92", "92",
                                         "4"), capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
            assert first.wait(timeout=300) == 0, log_path.read_text()
        finally:
            if first.poll() is None:
                first.kill()
    assert second.returncode == 1, second.stderr
    assert f"is being analysed by another run (process {first.pid}" in second.stderr
    assert "(environment error)" in second.stderr and "wait for that run to finish" in second.stderr
    from ace_neuro.storage import open_movie

    assert open_movie(out / "cropped_movie" / "96.zarr").frames.shape[1:] == (96, 96)  # the first run's (no crop)
    assert not (out / ".locks" / "96.lock").exists()  # released when the first run ended
    first_log = log_path.read_text()  # a long stage says how far it is on the terminal
    assert "line 96: motion_corrected_movie: " in first_log and " frames/s, about " in first_log


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    import json
    import socket

    from dagster import DagsterInstance

    from ace_assets.line_lock import line_claimed, lock_path

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = lock_path(tmp_path, 96)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    with DagsterInstance.ephemeral() as instance, line_claimed(instance, 96, tmp_path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


# --------------------------------------------------------------------------- full and read-only disks
def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs Linux and root here (CI containers may not allow it)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, f"ace-test-{uuid.uuid4().hex[:6]}", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this sandbox cannot mount a tmpfs: {r.stderr.strip()}")


@pytest.fixture
def mounts():
    mounted = []
    yield mounted
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_is_an_environment_error_and_leaves_nothing_that_looks_complete(tiny, tmp_path, mounts):
    out = tmp_path / "full"
    _mount_tmpfs(out, "size=160k")
    mounts.append(out)
    r = subprocess.run(cli_args(tiny, out), capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}, timeout=600)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "(environment error)" in r.stderr and "disk is full" in r.stderr
    from ace_neuro.storage import StorageError, open_movie

    for zarr_dir in out.rglob("*.zarr"):
        if zarr_dir.name.startswith("."):
            continue  # a temporary: the next write of the same asset removes it
        try:
            open_movie(zarr_dir)
        except StorageError:
            pytest.fail(f"{zarr_dir} is stored but not complete")
        except Exception:
            pass  # a bundle, not a movie


def test_a_read_only_disk_is_an_environment_error(tiny, tmp_path, mounts):
    out = tmp_path / "ro"
    _mount_tmpfs(out, "size=1m,ro")
    mounts.append(out)
    r = subprocess.run(cli_args(tiny, out / "root"), capture_output=True, text=True,
                       cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}, timeout=600)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "(environment error)" in r.stderr and "read-only" in r.stderr
    assert "this is unexpected" not in r.stderr


def test_a_run_from_the_ui_stops_after_the_crop_when_the_parameters_do_not_fit(tiny, tmp_path):
    """Runs launched from the UI skip the front end's preflight: the blocking check on cropped_movie stands in."""
    from dagster import AssetCheckKey, AssetKey, DagsterInstance

    from ace_assets.runner import materialize_lines, step_failures

    with DagsterInstance.ephemeral() as instance:
        (run,) = materialize_lines([96], project_path=str(tiny.project_path), data_path=str(tiny.data_path),
                                   storage_root=str(tmp_path / "out"), instance=instance,
                                   overrides={"cut": (0.1, 20.0)})
        assert not run.success
        assert "cropped_movie" in run.metadata and "motion_corrected_movie" not in run.metadata
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [AssetCheckKey(AssetKey("cropped_movie"), "parameters_fit_the_recording")])
        evaluation = next(iter(check.values())).event.dagster_event.event_specific_data
        failures = step_failures(instance, run.run_id)
    assert not evaluation.passed and "Nyquist" in evaluation.description
    assert evaluation.metadata["parameter"].value == "cut"
    # the front end reports the failed check as the parameter problem it is, not as a bug
    [failure] = failures
    assert failure.report.category == "parameters" and failure.report.parameter == "cut"
    assert "Nyquist" in failure.report.problem
