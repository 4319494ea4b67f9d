"""Sensors through build_sensor_context with a real instance: a synthetic session folder copied into the data path."""
import csv
import os
import shutil
import time

import pytest
from dagster import (AssetKey, AssetMaterialization, DagsterInstance, DagsterRun, DagsterRunStatus,
                     DefaultSensorStatus, SensorResult, SkipReason, build_sensor_context)

from ace_neuro.synthetic import SyntheticConfig, simulate_ground_truth
from ace_neuro.synthetic.formats import write_ucla_v4_session
from resources import ProjectResource
from sensors import all_sensors, build_experiment_lines_sensor, build_raw_data_sensor
from sensors.raw_data import analysed_lines, graph_root_keys, run_key
from sensors.readiness import FolderFingerprint, SensorCursor, folder_fingerprint

HEADER = "line number,id,date (YYMMDD),calcium imaging directory,comments\n"


@pytest.fixture(scope="module")
def session_template(tmp_path_factory):
    """A complete UCLA V4 session folder, written once, copied into data paths by the tests."""
    truth = simulate_ground_truth(SyntheticConfig(height=40, width=48, n_frames=40, n_neurons=2, motion="none",
                                                  seed=5))
    return write_ucla_v4_session(tmp_path_factory.mktemp("template") / "session", truth, frames_per_file=20)


@pytest.fixture
def lab(tmp_path):
    project, data = tmp_path / "project", tmp_path / "data"
    project.mkdir()
    data.mkdir()
    write_experiments(project, [96, 97, 98])
    return project, data


def write_experiments(project, lines):
    rows = "".join(f"{n},R23070{n % 10}B,230901,R23070{n % 10}B\\230901\\line{n},\n" for n in lines)
    (project / "experiments.csv").write_text(HEADER + "documentation row (text key),,,,\n" + rows)


def arrive(session_template, data, line, *, age_s=3600.0):
    """Copy the session into the data path as if the rig's copy ended ``age_s`` seconds ago."""
    dest = data / f"R23070{line % 10}B" / "230901" / f"line{line}"
    shutil.copytree(session_template, dest)
    old = time.time() - age_s
    for root, _dirs, files in os.walk(dest):
        for f in files:
            os.utime(os.path.join(root, f), (old, old))
    return dest


def tick(sensor, instance, cursor, project, data):
    ctx = build_sensor_context(instance=instance, cursor=cursor,
                               resources={"project": ProjectResource(project_path=str(project), data_path=str(data))})
    result = sensor(ctx)
    if isinstance(result, SkipReason):
        return SensorResult(skip_reason=result)
    assert isinstance(result, SensorResult)
    return result


def skip_text(result):
    return result.skip_reason.skip_message if result.skip_reason else ""


def test_new_folder_triggers_one_run_after_it_settles(lab, session_template):
    project, data = lab
    sensor = build_raw_data_sensor(settle_seconds=60)
    with DagsterInstance.ephemeral() as instance:
        r = tick(sensor, instance, None, project, data)
        assert not r.run_requests and "3 session folder(s) not under the data path yet" in skip_text(r)
        arrive(session_template, data, 97)
        r = tick(sensor, instance, r.cursor, project, data)  # first sight: sizes recorded, not launched yet
        assert not r.run_requests and "line 97: first seen" in skip_text(r)
        r = tick(sensor, instance, r.cursor, project, data)  # unchanged since last tick and settled: launch
        assert [(q.partition_key, q.run_key) for q in r.run_requests] == [("97", run_key("97"))]
        assert r.run_requests[0].tags["ace/line"] == "97"
        assert [list(d.partition_keys) for d in r.dynamic_partitions_requests] == [["97"]]
        r = tick(sensor, instance, r.cursor, project, data)  # once
        assert not r.run_requests and "1 line(s) already launched or analysed" in skip_text(r)


def test_recently_changed_or_growing_folder_waits(lab, session_template):
    project, data = lab
    sensor = build_raw_data_sensor(settle_seconds=600)
    with DagsterInstance.ephemeral() as instance:
        folder = arrive(session_template, data, 96, age_s=5)  # copied 5 s ago: not settled
        r = tick(sensor, instance, None, project, data)
        r = tick(sensor, instance, r.cursor, project, data)
        assert not r.run_requests and "line 96: files changed" in skip_text(r)
        assert "Settle time 600 s" in skip_text(r)
        # settled files, but a new chunk arrives between two ticks: wait for it to stop
        old = time.time() - 3600
        for p in folder.rglob("*"):
            os.utime(p, (old, old))
        r = tick(sensor, instance, r.cursor, project, data)
        (folder / "Miniscope" / "2.avi").write_bytes(b"\0" * 10)
        os.utime(folder / "Miniscope" / "2.avi", (old, old))
        r = tick(sensor, instance, r.cursor, project, data)
        assert not r.run_requests and "line 96: files still changing" in skip_text(r)
        r = tick(sensor, instance, r.cursor, project, data)
        assert [q.partition_key for q in r.run_requests] == ["96"]


def test_folder_no_reader_recognises_waits(lab):
    project, data = lab
    sensor = build_raw_data_sensor(settle_seconds=0)
    with DagsterInstance.ephemeral() as instance:
        (data / "R230706B" / "230901" / "line96").mkdir(parents=True)  # the copy has only made the folder
        r = tick(sensor, instance, None, project, data)
        r = tick(sensor, instance, r.cursor, project, data)
        assert not r.run_requests and "line 96: no reader recognises the folder yet" in skip_text(r)


def test_cap_per_tick_defers_the_rest(lab, session_template):
    project, data = lab
    sensor = build_raw_data_sensor(settle_seconds=0, max_runs_per_tick=2)
    with DagsterInstance.ephemeral() as instance:
        for line in (96, 97, 98):
            arrive(session_template, data, line)
        r = tick(sensor, instance, None, project, data)
        r = tick(sensor, instance, r.cursor, project, data)
        assert [q.partition_key for q in r.run_requests] == ["96", "97"]
        r = tick(sensor, instance, r.cursor, project, data)
        assert [q.partition_key for q in r.run_requests] == ["98"]


def test_lines_already_analysed_or_running_are_left_alone(lab, session_template):
    from ace_assets.definitions import all_assets

    project, data = lab
    sensor = build_raw_data_sensor(settle_seconds=0)
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("experiment_lines", ["96", "97", "98"])
        for key in graph_root_keys(all_assets()):  # line 96 was analysed from the UI or the CLI
            instance.report_runless_asset_event(AssetMaterialization(asset_key=key, partition="96"))
        assert analysed_lines(instance, graph_root_keys(all_assets())) == {"96"}
        # a backfill run for line 97 is running
        instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id="running-97", status=DagsterRunStatus.STARTED,
                                    tags={"dagster/partition": "97"}))
        for line in (96, 97, 98):
            arrive(session_template, data, line)
        r = tick(sensor, instance, None, project, data)
        r = tick(sensor, instance, r.cursor, project, data)
        assert [q.partition_key for q in r.run_requests] == ["98"]
        assert r.dynamic_partitions_requests == []  # 98 already a partition
        assert SensorCursor.from_json(r.cursor).done == {"96": "materialised", "98": run_key("98")}


def test_graph_roots_are_the_ingest_assets():
    from ace_assets.definitions import all_assets

    roots = graph_root_keys(all_assets())
    assert AssetKey("raw_movie") in roots and AssetKey("frame_times") in roots
    assert AssetKey("cropped_movie") not in roots


def test_unreadable_project_is_a_clear_skip(tmp_path):
    sensor = build_raw_data_sensor(settle_seconds=0)
    with DagsterInstance.ephemeral() as instance:
        r = tick(sensor, instance, None, tmp_path / "missing", tmp_path)
        assert not r.run_requests and "Cannot read the project" in skip_text(r) and "ACE_PROJECT_PATH" in skip_text(r)


def test_experiment_lines_sensor_adds_new_rows(lab):
    project, data = lab
    sensor = build_experiment_lines_sensor()
    with DagsterInstance.ephemeral() as instance:
        r = tick(sensor, instance, None, project, data)
        assert [list(d.partition_keys) for d in r.dynamic_partitions_requests] == [["96", "97", "98"]]
        assert not r.run_requests
        instance.add_dynamic_partitions("experiment_lines", ["96", "97", "98"])
        r = tick(sensor, instance, None, project, data)
        assert "every one is already a partition" in skip_text(r)
        write_experiments(project, [96, 97, 98, 120])  # a row added in the lab's spreadsheet
        r = tick(sensor, instance, None, project, data)
        assert [list(d.partition_keys) for d in r.dynamic_partitions_requests] == [["120"]]


def test_fingerprint_and_cursor_round_trip(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.avi").write_bytes(b"12345")
    (tmp_path / "y.csv").write_bytes(b"12")
    os.utime(tmp_path / "y.csv", (1000.0, 1000.0))
    os.utime(tmp_path / "a" / "x.avi", (2000.0, 2000.0))
    fp = folder_fingerprint(tmp_path)
    assert fp == FolderFingerprint(2, 7, 2000.0)
    cur = SensorCursor(pending={"96": fp}, done={"97": "raw-data-97"})
    assert SensorCursor.from_json(cur.to_json()) == cur
    assert SensorCursor.from_json("not json") == SensorCursor()
    assert SensorCursor.from_json(None) == SensorCursor()


def test_raw_data_sensor_targets_every_asset_of_the_graph():
    from dagster import Definitions, asset

    from ace_assets.partitions import lines_partitions

    @asset(partitions_def=lines_partitions)
    def first():
        return 1

    @asset(partitions_def=lines_partitions)
    def second(first):
        return first + 1

    repo = Definitions(assets=[first, second], sensors=[build_raw_data_sensor()]).get_repository_def()
    job = repo.get_job(repo.get_sensor_def("new_raw_data").job_name)
    assert job.asset_layer.selected_asset_keys == {AssetKey("first"), AssetKey("second")}


def test_platform_definitions_register_both_sensors(monkeypatch):
    from ace_assets.definitions import defs

    assert {s.name for s in defs.sensors} == {"experiment_lines", "new_raw_data", "parameters_changed"}
    by_name = {s.name: s for s in defs.sensors}
    assert by_name["parameters_changed"].default_status == DefaultSensorStatus.RUNNING
    assert by_name["new_raw_data"].default_status == DefaultSensorStatus.STOPPED
    assert by_name["experiment_lines"].default_status == DefaultSensorStatus.RUNNING
    monkeypatch.setenv("ACE_RAW_DATA_SENSOR", "running")
    monkeypatch.setenv("ACE_SENSOR_SETTLE_SECONDS", "5")
    sensors = {s.name: s for s in all_sensors()}
    assert sensors["new_raw_data"].default_status == DefaultSensorStatus.RUNNING
    assert "Settle time 5 s" in sensors["new_raw_data"].description
    monkeypatch.setenv("ACE_SENSOR_MAX_RUNS_PER_TICK", "zero")
    with pytest.raises(ValueError, match="ACE_SENSOR_MAX_RUNS_PER_TICK"):
        all_sensors()


def test_parameters_changed_sensor_refreshes_only_analysed_lines_once_per_edit(tmp_path):
    from dagster import materialize

    from ace_assets.definitions import build_resources
    from ace_assets.cnmfe import component_curation
    from ace_assets.parameters import line_parameters
    from ace_neuro.project import curation_file
    from ace_neuro.stages.evaluation import Curation, save_curation
    from ace_neuro.synthetic.project import write_demo_project
    from sensors import build_parameters_changed_sensor
    from sensors.parameters_changed import SNAPSHOT_ASSETS, stored_hashes

    demo = write_demo_project(tmp_path / "demo", lines=[96, 97], height=40, width=48, n_frames=30,
                              frames_per_file=30)
    project = ProjectResource(project_path=str(demo.project_path), data_path=str(demo.data_path))
    sensor = build_parameters_changed_sensor()
    ctx = lambda inst: build_sensor_context(instance=inst, resources={"project": project})  # noqa: E731
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("experiment_lines", ["96", "97"])
        r = sensor(ctx(instance))
        assert isinstance(r, SkipReason)  # nothing analysed yet: nothing to refresh
        resources = build_resources(project, str(tmp_path / "storage"))
        assert materialize([line_parameters, component_curation], partition_key="96", instance=instance,
                           resources=resources).success
        assert set(stored_hashes(instance, ["96", "97"])) == {"96"}
        r = sensor(ctx(instance))
        assert isinstance(r, SkipReason) and "No analysed line's parameters changed" in r.skip_message
        # the lab edits line 96's row: detrending switched on, CNMF-E min_corr changed
        path = demo.project_path / "analysis_parameters.csv"
        with open(path, newline="") as f:
            header, *rows = list(csv.reader(f))
        assert rows[0][0] == "96"
        rows[0][header.index("detrend_method")] = "median"
        rows[0][header.index("min_corr")] = "0.85"
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        r = sensor(ctx(instance))
        (req,) = r.run_requests
        assert req.partition_key == "96"
        assert set(req.tags["ace/changed"].split(",")) == {"detrend_parameters", "cnmfe_parameters"}
        assert {k.path[-1] for k in req.asset_selection} == set(SNAPSHOT_ASSETS)
        assert req.run_key == sensor(ctx(instance)).run_requests[0].run_key  # same edit, same key: once
        # the snapshots are refreshed; then a person rejects a component in the curation file by hand
        assert materialize([line_parameters, component_curation], partition_key="96", instance=instance,
                           resources=resources).success
        assert isinstance(sensor(ctx(instance)), SkipReason)
        save_curation(curation_file(demo.project_path, 96), Curation(rejected=(3,)))
        (req,) = sensor(ctx(instance)).run_requests
        assert req.tags["ace/changed"] == "component_curation"
