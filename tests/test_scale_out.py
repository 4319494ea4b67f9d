"""Beyond one machine, on real servers: PostgreSQL instance storage and Celery workers.

The tests start PostgreSQL, Redis, two Celery workers and ``dagster dev`` on loopback
(tests/servers.py), with deploy/cluster.yaml as the instance's dagster.yaml and
``ACE_EXECUTOR=celery``, then

- backfill three small synthetic lines: every asset is materialised, each step ran on a Celery
  worker (both workers took some), and every run and its events are rows in PostgreSQL;
- kill the process executing CNMF-E on a worker with SIGKILL halfway through: the run fails, no
  CNMF-E output of that line looks complete, and Dagster's run retry (run_retries in the profile)
  finishes the line.

They skip, saying what is missing, where PostgreSQL, redis-server or the cluster extra is not
installed (.ci/run installs them).
"""
import os
import shutil
import signal
import sys
import time

import pytest

from servers import (REPO, DagsterDev, Postgres, celery_worker, cluster_env, missing_servers, set_pool_limit,
                     start_postgres_and_redis, wait_for, wait_for_workers)

BACKFILL_LINES = ["96", "97", "98"]
KILL_LINE = "99"  # bigger, so CNMF-E lasts long enough to be killed halfway

_missing = missing_servers()
needs_servers = pytest.mark.skipif(_missing is not None, reason=f"needs real servers; {_missing}")


def _merge_line(demo, extra, line: str) -> None:
    """Add ``extra``'s line (its CSV rows, its session folder as ``incoming/line<N>``) to ``demo``'s project."""
    import csv
    import io

    folder = f"incoming/line{line}"
    for name in ("experiments.csv", "analysis_parameters.csv"):
        row = next(r for r in (extra.project_path / name).read_text().splitlines() if r.startswith(f"{line},"))
        if name == "experiments.csv":
            cells = next(csv.reader([row]))
            cells[3] = folder  # the session folder relative to the data path
            out = io.StringIO()
            csv.writer(out, lineterminator="").writerow(cells)
            row = out.getvalue()
        target = demo.project_path / name
        text = target.read_text()
        target.write_text(text + ("" if text.endswith("\n") else "\n") + row + "\n")
    shutil.copytree(extra.session_dirs[int(line)], demo.data_path / folder)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    from ace_neuro.synthetic.project import write_demo_project

    root = tmp_path_factory.mktemp("scale_out")
    demo = write_demo_project(root / "demo", lines=[int(x) for x in BACKFILL_LINES], height=64, width=64,
                              n_frames=300, frames_per_file=100, seed=4)
    extra = write_demo_project(root / "extra", lines=[int(KILL_LINE)], height=128, width=128, n_frames=900,
                               frames_per_file=300, seed=5)
    _merge_line(demo, extra, KILL_LINE)
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "cluster.yaml", home / "dagster.yaml")
    started, saved_env = [], {}
    try:
        pg, redis = start_postgres_and_redis(root, started)
        env = cluster_env(pg, redis, home=home, demo=demo, storage=root / "storage", ACE_PROGRESS_INTERVAL_S="0.2")
        set_pool_limit(env, "heavy", 16)  # the step docs/deploy.md asks for on a new database
        workers = []
        for name in ("w1", "w2"):
            workers.append(celery_worker(name, env, root / f"celery_{name}.log"))
            started.append(workers[-1])
        wait_for_workers(redis.url, 2, workers)
        saved_env.update({key: os.environ.get(key) for key in pg.env()})
        os.environ.update(pg.env())  # this process opens the same instance
        instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        instance.add_dynamic_partitions("experiment_lines", [*BACKFILL_LINES, KILL_LINE])
        dev = DagsterDev(env, root / "dagster_dev.log")
        started.append(dev)
        dev.wait_until_ready()
        yield {"dev": dev, "instance": instance, "pg": pg, "workers": workers, "storage": root / "storage",
               "logs": [dev, *workers]}
    finally:
        for thing in reversed(started):
            thing.stop()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def asset_keys():
    from ace_assets.definitions import all_assets

    return sorted({k for a in all_assets() for k in a.keys}, key=lambda k: k.to_user_string())


def _finished(dev, backfill_id):
    status = dev.backfill_status(backfill_id)
    return status if status not in ("REQUESTED", "FAILING", "CANCELING") else None


@needs_servers
def test_backfill_on_postgres_and_celery_materialises_every_asset(cluster):
    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    dev, instance, pg = cluster["dev"], cluster["instance"], cluster["pg"]
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    keys = asset_keys()
    backfill_id = dev.launch_backfill(BACKFILL_LINES, keys, title="scale-out backfill")
    status = wait_for(lambda: _finished(dev, backfill_id), timeout_s=900, every_s=2, what="the backfill",
                      logs=cluster["logs"])
    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert sorted(r.tags["dagster/partition"] for r in runs) == BACKFILL_LINES
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (status, dev.log_tail())
    assert all(r.status == DagsterRunStatus.SUCCESS for r in runs), [(r.run_id, r.status) for r in runs]
    for key in keys:
        assert set(BACKFILL_LINES) <= instance.get_materialized_partitions(key), key.to_user_string()
    for line in BACKFILL_LINES:
        assert (cluster["storage"] / "cnmfe_estimates" / f"{line}.zarr").is_dir(), line

    # every step was executed by a Celery worker, and both workers took some
    hosts = set()
    for run in runs:
        step_starts = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
        delegated = [e for e in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
                     if "in celery worker" in (e.message or "")]
        assert len(delegated) == len(step_starts) > 0, run.run_id
        for e in delegated:
            hosts.add(e.dagster_event.engine_event_data.metadata["Celery worker"].value.split("@")[0])
    assert hosts == {"w1", "w2"}, hosts

    # the runs and their events are rows of PostgreSQL
    ids = [r.run_id for r in runs]
    rows = dict(pg.query("SELECT run_id, status FROM runs WHERE run_id = ANY(%s)", (ids,)))
    assert rows == {i: "SUCCESS" for i in ids}
    counts = dict(pg.query("SELECT run_id, count(*) FROM event_logs WHERE run_id = ANY(%s) GROUP BY run_id",
                           (ids,)))
    for run_id in ids:
        assert counts[run_id] == len(instance.all_logs(run_id)) > 50, run_id
    materialised = pg.query("SELECT count(DISTINCT (asset_key, partition)) FROM event_logs WHERE run_id = ANY(%s) "
                            "AND dagster_event_type = 'ASSET_MATERIALIZATION'", (ids,))[0][0]
    assert materialised == len(keys) * len(BACKFILL_LINES)


def _step_events(instance, run_id, step_key, event_type):
    return [e for e in instance.all_logs(run_id, of_type=event_type) if e.step_key == step_key]


@needs_servers
def test_a_worker_process_killed_in_cnmfe_fails_the_run_cleanly_and_the_retry_finishes(cluster):
    from dagster import AssetKey, DagsterEventType, DagsterRunStatus, RunsFilter

    dev, instance, workers = cluster["dev"], cluster["instance"], cluster["workers"]
    storage = cluster["storage"]
    backfill_id = dev.launch_backfill([KILL_LINE], asset_keys(), title="scale-out kill",
                                      tags={"dagster/max_retries": "1"})
    (run,) = wait_for(lambda: instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id})),
                      timeout_s=120, what="the backfill's run", logs=cluster["logs"])

    def cnmfe_halfway():
        progress = [e for e in instance.all_logs(run.run_id) if e.step_key == "cnmfe_estimates"
                    and "progress: cnmfe_estimates" in (e.user_message or "")]
        return progress and _step_events(instance, run.run_id, "cnmfe_estimates", DagsterEventType.STEP_START)

    (start,) = wait_for(cnmfe_halfway, timeout_s=600, every_s=0.2, what="CNMF-E to be under way",
                        logs=cluster["logs"])
    pid = start.dagster_event.pid
    # only ever a process of one of this test's workers
    assert os.getpgid(pid) in {w.proc.pid for w in workers}, pid
    os.kill(pid, signal.SIGKILL)

    failed = wait_for(lambda: (r := instance.get_run_by_id(run.run_id)).is_finished and r, timeout_s=300,
                      every_s=0.2, what="the run to end", logs=cluster["logs"])
    checked_at = time.time()
    assert failed.status == DagsterRunStatus.FAILURE
    assert not _step_events(instance, run.run_id, "cnmfe_estimates", DagsterEventType.STEP_SUCCESS)
    # nothing of the killed step looks complete: at most a hidden temporary beside where it would be
    folder = storage / "cnmfe_estimates"
    visible = [p.name for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []
    assert f"{KILL_LINE}.zarr" not in visible, visible
    assert KILL_LINE not in instance.get_materialized_partitions(AssetKey("cnmfe_estimates"))
    assert all(w.alive() for w in workers)  # the worker itself replaced its pool process

    def retry_done():
        retries = instance.get_runs(filters=RunsFilter(tags={"dagster/parent_run_id": run.run_id}))
        return retries and retries[0].is_finished and retries[0]

    retry = wait_for(retry_done, timeout_s=600, every_s=1, what="Dagster's retry of the failed run",
                     logs=cluster["logs"])
    assert retry.status == DagsterRunStatus.SUCCESS, dev.log_tail()
    assert retry.tags.get("dagster/retry_number") == "1"
    (retry_start,) = _step_events(instance, retry.run_id, "cnmfe_estimates", DagsterEventType.STEP_START)
    assert retry_start.timestamp > checked_at  # the storage was looked at before the retry redid CNMF-E
    # steps that had succeeded before the kill are not run again
    assert not _step_events(instance, retry.run_id, "raw_movie", DagsterEventType.STEP_START)
    for key in asset_keys():
        assert KILL_LINE in instance.get_materialized_partitions(key), key.to_user_string()
    assert (folder / f"{KILL_LINE}.zarr").is_dir()
    from ace_neuro.storage import read_bundle

    assert read_bundle(folder / f"{KILL_LINE}.zarr") is not None


# --- fast, in the default suite: the executor switch, and the lab-server profile on a real PostgreSQL ---

@pytest.mark.parametrize("env, name", [({}, None), ({"ACE_EXECUTOR": "default"}, None),
                                       ({"ACE_EXECUTOR": "multiprocess"}, "multiprocess"),
                                       ({"ACE_EXECUTOR": "in-process"}, "in_process")])
def test_the_executor_is_chosen_by_the_environment(env, name):
    from ace_assets.definitions import executor_from_env

    chosen = executor_from_env(env)
    assert (chosen.name if chosen is not None else None) == name


def test_celery_executor_takes_broker_and_backend_from_the_environment():
    pytest.importorskip("dagster_celery", reason="the cluster extra (dagster-celery) is not installed")
    from dagster import Definitions

    from ace_assets.definitions import all_assets, build_resources, executor_from_env
    from resources import ProjectResource

    chosen = executor_from_env({"ACE_EXECUTOR": "celery", "ACE_CELERY_BROKER": "redis://broker:6379/0"})
    assert chosen.name == "celery"
    resources = build_resources(ProjectResource(project_path="project", data_path=""), "storage")
    job = Definitions(assets=all_assets(), resources=resources, executor=chosen).resolve_implicit_global_asset_job_def()
    assert job.executor_def is chosen


def _executor_problem(env) -> str:
    from ace_assets.definitions import executor_from_env
    from ace_neuro.errors import EnvironmentProblem

    with pytest.raises(EnvironmentProblem) as err:
        executor_from_env(env)
    return f"{err.value} {err.value.fix}"


def test_an_unknown_executor_lists_the_known_ones():
    assert "default, multiprocess, in_process, celery" in _executor_problem({"ACE_EXECUTOR": "slurm"})


def test_celery_without_a_broker_says_what_to_set():
    pytest.importorskip("dagster_celery", reason="the cluster extra (dagster-celery) is not installed")
    assert "ACE_CELERY_BROKER" in _executor_problem({"ACE_EXECUTOR": "celery"})


def test_celery_without_the_cluster_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "dagster_celery", None)  # what an environment without the extra sees
    assert "pip install 'ace-neuro[cluster]'" in _executor_problem({"ACE_EXECUTOR": "celery"})


@needs_servers
def test_lab_server_profile_keeps_runs_and_events_in_postgres(tmp_path, monkeypatch):
    """deploy/lab-server.yaml on a real PostgreSQL: a line's ingest runs, and its run and events are rows there."""
    from dagster import AssetKey, AssetSelection, DagsterInstance, materialize
    from dagster._core.instance.ref import InstanceRef
    from dagster_postgres import PostgresRunStorage

    from ace_assets.definitions import all_assets, build_resources
    from ace_neuro.synthetic.project import write_demo_project
    from resources import ProjectResource

    demo = write_demo_project(tmp_path / "demo", lines=[96], height=48, width=48, n_frames=120,
                              frames_per_file=60, seed=4)
    pg = Postgres()
    try:
        pg.start()
        for key, value in pg.env().items():
            monkeypatch.setenv(key, value)
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "deploy" / "lab-server.yaml", home / "dagster.yaml")
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
            instance.add_dynamic_partitions("experiment_lines", ["96"])
            project = ProjectResource(project_path=str(demo.project_path), data_path=str(demo.data_path))
            result = materialize(all_assets(), selection=AssetSelection.assets("raw_movie", "frame_times").upstream(),
                                 partition_key="96", instance=instance,
                                 resources=build_resources(project, str(tmp_path / "storage")))
            assert result.success
            for asset in ("raw_movie", "frame_times"):
                assert "96" in instance.get_materialized_partitions(AssetKey(asset)), asset
            (status,) = pg.query("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))[0]
            assert status == "SUCCESS"
            kinds = dict(pg.query("SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s "
                                  "GROUP BY dagster_event_type", (result.run_id,)))
            # (the run's end is stored under its old name, PIPELINE_SUCCESS)
            assert kinds.get("ASSET_MATERIALIZATION", 0) >= 2 and kinds.get("PIPELINE_SUCCESS") == 1, kinds
    finally:
        pg.stop()
