"""End to end on the real server: `dagster dev` (webserver + daemon) on a temporary DAGSTER_HOME.

A backfill of three synthetic lines is launched through GraphQL and must materialise every
asset with its metadata; then the new-raw-data sensor, started through GraphQL, must launch
a run for a session folder copied into the data path. Slow (minutes): `make test-slow`.
"""
import os
import shutil
from pathlib import Path

import pytest
from servers import DagsterDev  # noqa: E402  (tests/ is on sys.path under pytest)
from servers import wait_for as wait_until

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

BACKFILL_LINES = ["96", "97", "98"]
BROKEN_LINE = "99"  # its video is truncated: its run fails, the others' do not
SENSOR_LINE = "100"


def wait_for(predicate, *, timeout_s: float, every_s: float = 3.0, what: str, server: DagsterDev):
    return wait_until(predicate, timeout_s=timeout_s, every_s=every_s, what=what, logs=(server,))


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    from ace_neuro.synthetic.formats import corrupt_video
    from ace_neuro.synthetic.project import write_demo_project

    root = tmp_path_factory.mktemp("e2e")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    demo = write_demo_project(root / "demo", lines=[int(x) for x in [*BACKFILL_LINES, BROKEN_LINE]], height=64,
                              width=64, n_frames=300, frames_per_file=100, seed=4)
    video = next(demo.session_dirs[int(BROKEN_LINE)].rglob("*.avi"))
    corrupt_video(video, video.stat().st_size // 2)
    extra = write_demo_project(root / "extra", lines={int(SENSOR_LINE): "ucla_v4_ffv1"}, height=64, width=64,
                               n_frames=300, frames_per_file=100, seed=5)
    env = {**os.environ, "DAGSTER_HOME": str(home), "ACE_PROJECT_PATH": str(demo.project_path),
           "ACE_DATA_PATH": str(demo.data_path), "ACE_STORAGE_ROOT": str(root / "storage"),
           "ACE_SENSOR_SETTLE_SECONDS": "0", "ACE_SENSOR_INTERVAL_SECONDS": "5", "MPLBACKEND": "Agg"}
    env.pop("ACE_RAW_DATA_SENSOR", None)
    server = DagsterDev(env, root / "dagster_dev.log")
    try:
        server.wait_until_ready(daemons=("SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR"))
        instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        yield {"server": server, "instance": instance, "demo": demo, "extra": extra, "storage": root / "storage"}
    finally:
        server.stop(grace_s=60)


def asset_keys():
    from ace_assets.definitions import all_assets

    return sorted({k for a in all_assets() for k in a.keys}, key=lambda k: k.to_user_string())


def wait_for_backfill(server: DagsterDev, backfill_id: str, timeout_s: float) -> str:
    def finished():
        status = server.backfill_status(backfill_id)
        return status if status not in ("REQUESTED", "FAILING", "CANCELING") else None

    return wait_for(finished, timeout_s=timeout_s, every_s=5, what=f"backfill {backfill_id}", server=server)


def test_backfill_of_three_lines_materialises_every_asset(platform):
    from dagster import AssetRecordsFilter, DagsterRunStatus, RunsFilter

    server, instance = platform["server"], platform["instance"]
    # the experiment_lines sensor (running by default) adds the CSV's lines as partitions
    wait_for(lambda: set(BACKFILL_LINES) <= set(instance.get_dynamic_partitions("experiment_lines")),
             timeout_s=180, what="the experiment_lines sensor to add the partitions", server=server)
    keys = asset_keys()
    backfill_id = server.launch_backfill(BACKFILL_LINES, keys, title="e2e backfill")
    status = wait_for_backfill(server, backfill_id, timeout_s=1500)
    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
    failed = [r.run_id for r in runs if r.status != DagsterRunStatus.SUCCESS]
    assert status in ("COMPLETED", "COMPLETED_SUCCESS") and not failed, (status, failed, server.log_tail())
    for key in keys:
        assert set(BACKFILL_LINES) <= instance.get_materialized_partitions(key), key
        for line in BACKFILL_LINES:
            (record,) = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, asset_partitions=[line]), limit=1).records
            meta = record.asset_materialization.metadata
            assert meta, f"{key.to_user_string()} line {line} has no metadata"
    storage = platform["storage"]
    for line in BACKFILL_LINES:
        assert list((storage / "raw_movie").glob(f"{line}.zarr")), line


def test_a_failed_line_does_not_stop_the_others(platform):
    from dagster import AssetKey, DagsterRunStatus, RunsFilter

    server, instance = platform["server"], platform["instance"]
    wait_for(lambda: BROKEN_LINE in instance.get_dynamic_partitions("experiment_lines"), timeout_s=180,
             what="the broken line's partition", server=server)
    ingest = [AssetKey("raw_movie"), AssetKey("frame_times")]
    before = instance.get_latest_materialization_event(AssetKey("raw_movie")).timestamp
    backfill_id = server.launch_backfill([BROKEN_LINE, "96"], ingest, title="e2e broken line")
    status = wait_for_backfill(server, backfill_id, timeout_s=600)
    runs = {r.tags["dagster/partition"]: r for r in
            instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))}
    assert status in ("COMPLETED_FAILED", "FAILED", "COMPLETED"), status
    assert runs[BROKEN_LINE].status == DagsterRunStatus.FAILURE
    assert runs["96"].status == DagsterRunStatus.SUCCESS
    assert instance.get_latest_materialization_event(AssetKey("raw_movie")).timestamp > before
    assert BROKEN_LINE not in instance.get_materialized_partitions(AssetKey("raw_movie"))


def test_sensor_runs_the_graph_for_a_folder_copied_into_the_data_path(platform):
    from dagster import DagsterRunStatus, RunsFilter

    from ace_neuro.project import Project

    server, instance, demo, extra = platform["server"], platform["instance"], platform["demo"], platform["extra"]
    data = server.graphql(
        """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename
             ... on Sensor { sensorState { status } } ... on PythonError { message } } }""",
        {"s": {"repositoryLocationName": server.location, "repositoryName": server.repository,
               "sensorName": "new_raw_data"}})
    assert data["startSensor"]["__typename"] == "Sensor", data
    # a new row in the lab's spreadsheet, then its session folder arrives from the rig
    experiments = demo.project_path / "experiments.csv"
    with open(experiments, "a") as f:
        if not experiments.read_text().endswith("\n"):
            f.write("\n")
        f.write(f"{SENSOR_LINE},R230801Z,230920,incoming\\line{SENSOR_LINE}\n")
    params = (extra.project_path / "analysis_parameters.csv").read_text().splitlines()
    with open(demo.project_path / "analysis_parameters.csv", "a") as f:
        f.write(next(r for r in params if r.startswith(f"{SENSOR_LINE},")) + "\n")
    source = Project.load(extra.project_path, extra.data_path).session_dir(int(SENSOR_LINE))
    shutil.copytree(source, demo.data_path / "incoming" / f"line{SENSOR_LINE}")

    def sensor_run():
        runs = instance.get_runs(filters=RunsFilter(tags={"ace/trigger": "new_raw_data",
                                                          "dagster/partition": SENSOR_LINE}))
        done = [r for r in runs if r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE,
                                                DagsterRunStatus.CANCELED)]
        return done[0] if done else None

    run = wait_for(sensor_run, timeout_s=900, every_s=5, what="the sensor's run for the copied folder",
                   server=server)
    assert run.status == DagsterRunStatus.SUCCESS, server.log_tail()
    assert SENSOR_LINE in instance.get_dynamic_partitions("experiment_lines")
    for key in asset_keys():
        assert SENSOR_LINE in instance.get_materialized_partitions(key), key
    runs = instance.get_runs(filters=RunsFilter(tags={"ace/trigger": "new_raw_data", "dagster/partition": SENSOR_LINE}))
    assert len(runs) == 1  # once
