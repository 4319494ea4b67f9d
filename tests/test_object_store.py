"""Storage on an object store: every IO manager through a local S3-compatible server (moto), the marker scheme
(a version is read only through its marker; a killed writer's version is never read and is removed by the next
write), and one tiny line through the whole graph with its storage root on ``s3://``."""
import json
import signal
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from dagster import DagsterInstance, asset, materialize

from ace_assets.partitions import LINES_PARTITION, lines_partitions
from ace_neuro import storage
from ace_neuro.movie import Movie, MovieAlias, MovieStream
from ace_neuro.params.stages import CropParams
from ace_neuro.report import Figure, LineReport, Section, Text
from ace_neuro.stages.cnmfe.result import CnmfeResult
from resources import HtmlIOManager, JsonIOManager, ParquetIOManager, ZarrIOManager

pytest.importorskip("s3fs", reason="the object-store tests need s3fs (pip install -e '.[dev]')")
moto_server = pytest.importorskip("moto.server", reason="the object-store tests need moto[server] (the dev extra)")
boto3 = pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port, for this module only."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_root(s3_endpoint, monkeypatch, tmp_path):
    """``s3://<fresh bucket>/root`` with the server's endpoint and dummy credentials in ACE_STORAGE_OPTIONS."""
    # max_concurrency=1: s3fs reads small objects with one GET, without asking their size first
    options = {"key": "testing", "secret": "testing", "use_listings_cache": False, "max_concurrency": 1,
               "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}
    monkeypatch.setenv(storage.STORAGE_OPTIONS_ENV, json.dumps(options))
    monkeypatch.setenv("ACE_LOCK_DIR", str(tmp_path / "locks"))
    bucket = f"ace-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/root"


def _listing(url: str) -> list[str]:
    fs, path = storage.filesystem(url)
    fs.invalidate_cache()
    return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))


def _stream(movie, block=7, **kw):
    return MovieStream(shape=movie.shape, dtype=movie.dtype,
                       blocks=(movie[s:s + block] for s in range(0, len(movie), block)),
                       times=np.arange(len(movie)) / 20.0, frame_rate=20.0, **kw)


def _bundle() -> CnmfeResult:
    h = w = 12
    rng = np.random.default_rng(0)
    c = np.maximum(rng.standard_normal((2, 30)), 0).astype(np.float32)
    return CnmfeResult(A=sp.random(h * w, 2, density=0.2, format="csc", dtype=np.float32, random_state=0), C=c,
                       S=c.copy(), YrA=np.zeros_like(c), sn=np.ones(2), baseline=np.zeros(2), g=np.zeros((2, 2)),
                       b0=np.zeros((h, w), np.float32), W=sp.csr_matrix((36, 36), dtype=np.float32),
                       ring_coef=np.zeros((5, 6, 6), np.float32), ring_radius=3, ssub_B=2, n_harmonics=2,
                       corr=np.ones((h, w), np.float32), pnr=np.ones((h, w), np.float32), seeds=np.zeros((2, 2)),
                       dims=(h, w), frame_rate=20.0, params={})


def test_every_io_manager_round_trips_on_s3(s3_root):
    movie = np.random.default_rng(1).integers(0, 200, (40, 8, 6), dtype=np.uint8)
    seen = {}

    @asset(partitions_def=lines_partitions, io_manager_key="zarr_io")
    def some_movie():
        return _stream(movie, extras=lambda: {"shifts": np.ones((40, 2))})

    @asset(partitions_def=lines_partitions, io_manager_key="zarr_io")
    def passed_through(some_movie: Movie):
        return MovieAlias(some_movie, "stage disabled")

    @asset(partitions_def=lines_partitions, io_manager_key="zarr_io")
    def some_bundle():
        return _bundle()

    @asset(partitions_def=lines_partitions, io_manager_key="parquet_io")
    def some_table(passed_through: Movie):
        return pd.DataFrame({"frame": np.arange(passed_through.n_frames),
                             "mean": np.asarray(passed_through.frames[:]).mean(axis=(1, 2))})

    @asset(partitions_def=lines_partitions, io_manager_key="json_io")
    def some_params():
        return CropParams(enabled=True, coords=(1, 7, 5, 1))

    @asset(partitions_def=lines_partitions, io_manager_key="html_io")
    def some_report(some_params, some_bundle, some_table):
        seen.update(params=some_params, bundle=some_bundle, table=some_table)
        return LineReport("line 96", sections=(Section("s", (Text("t", "hello"), Figure("f", b"\x89PNG"))),))

    @asset(partitions_def=lines_partitions)
    def reads_report(some_report):
        seen["report"] = some_report

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(LINES_PARTITION, ["96"])
    res = materialize([some_movie, passed_through, some_bundle, some_table, some_params, some_report, reads_report],
                      partition_key="96", instance=instance,
                      resources={"zarr_io": ZarrIOManager(base_path=s3_root, chunk_frames=16),
                                 "parquet_io": ParquetIOManager(base_path=s3_root),
                                 "json_io": JsonIOManager(base_path=s3_root),
                                 "html_io": HtmlIOManager(base_path=s3_root)})
    assert res.success
    m = storage.open_movie(f"{s3_root}/some_movie/96.zarr")
    np.testing.assert_array_equal(m.frames[:], movie)
    assert m.frames.chunks == (16, 8, 6) and m.extras["shifts"].shape == (40, 2)
    np.testing.assert_allclose(m.extras["mean_projection"][:], movie.mean(0), rtol=1e-6)
    alias = storage.open_movie(f"{s3_root}/passed_through/96.zarr")
    assert alias.path == f"{s3_root}/some_movie/96.zarr"  # followed to its input, no copy
    assert "frames" not in _listing(str(storage.resolve(f"{s3_root}/passed_through/96.zarr")))  # no copy
    np.testing.assert_allclose(seen["table"]["mean"], movie.mean(axis=(1, 2)))
    assert seen["params"] == CropParams(enabled=True, coords=(1, 7, 5, 1))
    np.testing.assert_array_equal(seen["bundle"].C, _bundle().C)
    assert seen["report"].startswith(f"{s3_root}/some_report/.96.html.v-")
    assert b"hello" in storage.read_bytes(f"{s3_root}/some_report/96.html")
    # the layout: one marker per output beside its one hidden version
    assert _listing(f"{s3_root}/some_table")[1] == "96.parquet.current"
    assert _listing(f"{s3_root}/some_table")[0].startswith(".96.parquet.v-")
    mat = res.asset_materializations_for_node("some_table")[0]
    assert mat.metadata["path"].value == f"{s3_root}/some_table/96.parquet"


def test_a_failed_write_keeps_the_previous_output_and_leaves_nothing(s3_root):
    url = f"{s3_root}/m/1.zarr"
    first = np.full((20, 4, 4), 7, np.uint8)
    storage.write_movie(_stream(first), url, chunk_frames=8)

    def blocks():
        yield first[:10]
        raise KeyboardInterrupt  # the run is stopped mid-write

    with pytest.raises(KeyboardInterrupt):
        storage.write_movie(MovieStream(first.shape, first.dtype, blocks(), np.arange(20.0), 10.0), url)
    np.testing.assert_array_equal(storage.open_movie(url).frames[:], first)
    assert len([n for n in _listing(f"{s3_root}/m") if n.startswith(".1.zarr.v-")]) == 1
    with pytest.raises(storage.StorageError, match="not found"):
        storage.read_table(f"{s3_root}/t/1.parquet")


_SLOW_WRITER = """
import sys, time
import numpy as np
from ace_neuro import storage
from ace_neuro.movie import MovieStream

def blocks():
    while True:
        yield np.ones((8, 4, 4), np.uint8)
        print("wrote", flush=True)
        time.sleep(0.1)

storage.write_movie(MovieStream((10_000, 4, 4), np.dtype(np.uint8), blocks(), np.arange(10_000.0), 10.0), sys.argv[1],
                    chunk_frames=8)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and pid checks are POSIX")
def test_a_killed_writer_is_never_read_and_the_next_write_removes_it(s3_root):
    url = f"{s3_root}/m/1.zarr"
    first = np.full((20, 4, 4), 3, np.uint8)
    storage.write_movie(_stream(first), url, chunk_frames=8)
    [kept] = [n for n in _listing(f"{s3_root}/m") if n.startswith(".")]
    child = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, url], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # a few chunks are on the server
            assert child.stdout.readline().startswith("wrote")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    names = _listing(f"{s3_root}/m")
    [half] = [n for n in names if n.startswith(".") and n != kept]
    assert f"-{child.pid}-" in half and "1.zarr.current" in names
    np.testing.assert_array_equal(storage.open_movie(url).frames[:], first)  # the marker still names the first
    fs, path = storage.filesystem(url)
    assert fs.ls(f"{path.rsplit('/', 1)[0]}/{half}")  # the half-written version is there, and never read
    second = np.full((12, 4, 4), 5, np.uint8)
    storage.write_movie(_stream(second), url)
    names = _listing(f"{s3_root}/m")
    assert half not in names and kept not in names  # the killed one and the replaced one are gone
    assert len([n for n in names if n.startswith(".")]) == 1 and "1.zarr.current" in names
    np.testing.assert_array_equal(storage.open_movie(url).frames[:], second)


def test_a_live_writers_version_is_left_alone(s3_root):
    url = f"{s3_root}/t/1.parquet"
    fs, path = storage.filesystem(url)
    folder = path.rsplit("/", 1)[0]
    live = f"{folder}/.1.parquet.v-{storage._owner_tag()}-{int(__import__('time').time())}-feedbeef"
    old_foreign = f"{folder}/.1.parquet.v-elsewhere-1-1000-deadbeef"
    fs.pipe_file(live, b"x")
    fs.pipe_file(old_foreign, b"x")
    storage.write_table(pd.DataFrame({"a": [1]}), url, metadata={"k": 1})
    names = _listing(f"{s3_root}/t")
    assert live.rsplit("/", 1)[1] in names and old_foreign.rsplit("/", 1)[1] not in names
    assert storage.read_table_metadata(url) == {"k": 1}


def test_a_marker_naming_something_else_is_refused(s3_root):
    fs, path = storage.filesystem(f"{s3_root}/t/1.parquet")
    fs.pipe_file(path + storage.MARKER_SUFFIX, json.dumps({"version": "../../elsewhere"}).encode())
    with pytest.raises(storage.StorageError, match="not a marker"):
        storage.read_table(f"{s3_root}/t/1.parquet")


def test_bad_storage_options_and_missing_backends_say_what_to_do(monkeypatch):
    monkeypatch.setenv(storage.STORAGE_OPTIONS_ENV, "{not json")
    with pytest.raises(storage.StorageError, match="ACE_STORAGE_OPTIONS is not valid JSON"):
        storage.exists("s3://bucket/x.zarr")
    monkeypatch.delenv(storage.STORAGE_OPTIONS_ENV)
    with pytest.raises(storage.StorageError, match="no filesystem"):
        storage.exists("nosuchprotocol://bucket/x.zarr")


def test_file_urls_are_local_paths(tmp_path):
    url = f"file://{tmp_path}/root/m/1.zarr"
    assert not storage.is_url(url) and storage.is_url("s3://b/k") and not storage.is_url(str(tmp_path))
    storage.write_movie(_stream(np.zeros((5, 2, 2), np.uint8)), url)
    assert (tmp_path / "root" / "m" / "1.zarr").is_dir()  # the local layout, renamed into place
    assert storage.open_movie(url).path == str(tmp_path / "root" / "m" / "1.zarr")


def test_a_url_storage_root_is_kept_as_a_url(tmp_path, monkeypatch):
    from ace_assets.cli import build_parser, run_arguments
    from ace_assets.pipeline import resolve_storage_root

    args = build_parser().parse_args(["--line-num", "96", "--storage-root", "s3://bucket/root/"])
    assert run_arguments(args)["storage_root"] == "s3://bucket/root/"
    assert resolve_storage_root("s3://bucket/root/", tmp_path) == "s3://bucket/root"
    monkeypatch.setenv("ACE_STORAGE_ROOT", "gs://bucket/lab")
    assert resolve_storage_root(None, tmp_path) == "gs://bucket/lab"
    assert resolve_storage_root(f"file://{tmp_path}/here", tmp_path) == (tmp_path / "here").resolve()


def test_a_tiny_line_through_the_whole_graph_on_s3(s3_root, tmp_path, monkeypatch):
    """What the CLI runs (MiniscopePipeline.run, headless) for one tiny line, every output on the object store."""
    from ace_assets.pipeline import MiniscopePipeline
    from ace_neuro.synthetic.project import write_demo_project

    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # a temporary instance
    demo = write_demo_project(tmp_path, lines=(96,), height=48, width=48, n_frames=200)
    result = MiniscopePipeline().run(line_num=96, project_path=str(demo.project_path), data_path=str(demo.data_path),
                                     headless=True, storage_root=s3_root)
    assert result.storage_root == s3_root
    for asset_name, suffix in (("raw_movie", ".zarr"), ("motion_corrected_movie", ".zarr"),
                               ("cnmfe_estimates", ".zarr"), ("accepted_components", ".parquet"),
                               ("line_report", ".html"), ("nwb_file", ".nwb")):
        assert storage.exists(f"{s3_root}/{asset_name}/96{suffix}"), asset_name
    assert result.outputs["nwb_file"] == f"{s3_root}/nwb_file/96.nwb"
    assert result.metadata["nwb_file"]["nwbinspector"].startswith(("clean", "issues", "nwbinspector not"))
    assert storage.open_movie(f"{s3_root}/raw_movie/96.zarr").frames.shape == (200, 48, 48)
    assert storage.read_table(f"{s3_root}/accepted_components/96.parquet")["accepted"].any()
    assert result.figures and all(str(p).startswith(f"{s3_root}/figures/96/") for p in result.figures.values())
    assert not list(tmp_path.glob("**/*.zarr")) and not list(tmp_path.glob("**/*.parquet"))  # nothing local


def test_the_line_lock_of_a_url_root_is_a_local_file(tmp_path, monkeypatch):
    from ace_assets.line_lock import LineBusyError, line_claimed, lock_path

    monkeypatch.setenv("ACE_LOCK_DIR", str(tmp_path / "locks"))
    path = lock_path("s3://bucket/root/", 96)
    assert path == lock_path("s3://bucket/root", 96) != lock_path("s3://bucket/other", 96)
    assert path.parent.parent == tmp_path / "locks" and path.name == "96.lock"
    assert lock_path(f"file://{tmp_path}/root", 96) == tmp_path / "root" / ".locks" / "96.lock"
    instance = DagsterInstance.ephemeral()
    with line_claimed(instance, 96, "s3://bucket/root"):
        assert path.exists()
        with pytest.raises(LineBusyError, match="line 96 is being analysed"):
            with line_claimed(instance, 96, "s3://bucket/root"):
                pass
    assert not path.exists()
