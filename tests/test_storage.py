"""Storage and IO managers: round trip through materialize(), atomic writes, pass-through aliases."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from ace_assets.partitions import lines_partitions, LINES_PARTITION
from ace_neuro import storage
from ace_neuro.movie import MovieAlias, MovieStream
from resources import ParquetIOManager, ZarrIOManager


def _stream(movie, times, block=7, **kw):
    return MovieStream(shape=movie.shape, dtype=movie.dtype,
                       blocks=(movie[s:s + block] for s in range(0, len(movie), block)),
                       times=times, frame_rate=20.0, **kw)


def test_movie_round_trip_and_projections(tmp_path):
    rng = np.random.default_rng(0)
    movie = rng.integers(0, 255, (50, 12, 9), dtype=np.uint8)
    times = np.arange(50) / 20.0
    path = storage.write_movie(_stream(movie, times, extras=lambda: {"shifts": np.ones((50, 2))}),
                               tmp_path / "m.zarr", chunk_frames=16)
    m = storage.open_movie(path)
    assert m.frames.shape == (50, 12, 9) and m.frames.dtype == np.uint8
    np.testing.assert_array_equal(m.frames[:], movie)
    np.testing.assert_array_equal(m.times, times)
    assert m.frame_rate == 20.0 and m.frames.chunks == (16, 12, 9)
    np.testing.assert_allclose(m.extras["mean_projection"][:], movie.mean(0), rtol=1e-6)
    np.testing.assert_array_equal(m.extras["max_projection"][:], movie.max(0))
    assert m.extras["shifts"].shape == (50, 2)


def test_interrupted_movie_write_leaves_nothing_that_loads(tmp_path):
    movie = np.zeros((40, 4, 4), np.uint8)

    def blocks():
        yield movie[:10]
        raise KeyboardInterrupt  # the run is killed mid-write

    with pytest.raises(KeyboardInterrupt):
        storage.write_movie(MovieStream(movie.shape, movie.dtype, blocks(), np.arange(40.0), 10.0),
                            tmp_path / "m.zarr")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(storage.StorageError, match="not found"):
        storage.open_movie(tmp_path / "m.zarr")


def test_short_stream_is_refused_and_old_output_kept(tmp_path):
    movie = np.ones((20, 3, 3), np.uint8)
    path = storage.write_movie(_stream(movie, np.arange(20.0)), tmp_path / "m.zarr")
    short = MovieStream(movie.shape, movie.dtype, iter([movie[:5]]), np.arange(20.0), 10.0)
    with pytest.raises(storage.StorageError, match="produced 5 frames but announced 20"):
        storage.write_movie(short, path)
    assert storage.open_movie(path).frames.shape == (20, 3, 3)


def test_group_without_complete_flag_does_not_load(tmp_path):
    import zarr
    g = zarr.open_group(str(tmp_path / "half.zarr"), mode="w")
    g.create_array("frames", shape=(3, 2, 2), dtype="uint8")
    with pytest.raises(storage.StorageError, match="incomplete"):
        storage.open_movie(tmp_path / "half.zarr")


def test_alias_follows_to_source(tmp_path):
    movie = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    src = storage.open_movie(storage.write_movie(_stream(movie, np.arange(6.0)), tmp_path / "a.zarr"))
    storage.write_alias(MovieAlias(src, "crop disabled"), tmp_path / "b.zarr")
    m = storage.open_movie(tmp_path / "b.zarr")
    np.testing.assert_array_equal(m.frames[:], movie)
    assert not (tmp_path / "b.zarr" / "frames").exists()  # no copy


def test_alias_survives_moving_and_copying_the_storage_root(tmp_path):
    import shutil

    movie = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    root = tmp_path / "root"
    src = storage.open_movie(storage.write_movie(_stream(movie, np.arange(6.0)), root / "raw_movie" / "1.zarr"))
    storage.write_alias(MovieAlias(src, "crop disabled"), root / "cropped_movie" / "1.zarr")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    moved = tmp_path / "moved"
    root.rename(moved)
    for where in (copy, moved):
        m = storage.open_movie(where / "cropped_movie" / "1.zarr")
        np.testing.assert_array_equal(m.frames[:], movie)
        assert m.path == str(where / "raw_movie" / "1.zarr")  # inside that root, not the old one


_SLOW_WRITER = """
import sys, time
import numpy as np
from ace_neuro import storage
from ace_neuro.movie import MovieStream

def blocks():
    while True:
        yield np.zeros((4, 8, 8), np.uint8)
        print("wrote", flush=True)
        time.sleep(0.2)

storage.write_movie(MovieStream((10_000, 8, 8), np.dtype(np.uint8), blocks(), np.arange(10_000.0), 10.0), sys.argv[1])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and pid checks are POSIX")
def test_killed_writer_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    import signal

    final = tmp_path / "out" / "1.zarr"
    child = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(final)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().startswith("wrote")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    left = [p.name for p in final.parent.iterdir()]
    assert len(left) == 1 and left[0].startswith(".1.zarr.tmp-") and f"-{child.pid}-" in left[0]
    with pytest.raises(storage.StorageError, match="not found"):
        storage.open_movie(final)
    # a live writer's temporary (this process) is left alone; the killed one is removed
    live = final.parent / f".1.zarr.tmp-{storage._owner_tag()}-feedbeef"
    live.mkdir()
    movie = np.ones((5, 8, 8), np.uint8)
    storage.write_movie(_stream(movie, np.arange(5.0)), final)
    assert sorted(p.name for p in final.parent.iterdir()) == [live.name, "1.zarr"]
    np.testing.assert_array_equal(storage.open_movie(final).frames[:], movie)


def test_temporaries_of_unknown_writers_are_removed_only_when_old(tmp_path):
    import os
    import time

    final = tmp_path / "t.parquet"
    old = tmp_path / ".t.parquet.tmp-1a2b3c4d"  # the naming of earlier versions
    fresh = tmp_path / ".t.parquet.tmp-9f8e7d6c"
    other_host = tmp_path / ".t.parquet.tmp-elsewhere-123-abcdef01"
    for p in (old, fresh, other_host):
        p.write_text("x")
    past = time.time() - storage.LEGACY_TEMP_MAX_AGE_S - 60
    os.utime(old, (past, past))
    assert storage.remove_stale_temporaries(final) == [old]
    assert fresh.exists() and other_host.exists()


def test_table_round_trip_atomic(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    p = storage.write_table(df, tmp_path / "t.parquet", metadata={"threshold": 2.5})
    pd.testing.assert_frame_equal(storage.read_table(p), df)
    assert storage.read_table_metadata(p) == {"threshold": 2.5}


def test_io_managers_through_materialize(tmp_path):
    movie = np.random.default_rng(1).integers(0, 200, (30, 8, 8), dtype=np.uint8)

    @asset(partitions_def=lines_partitions, io_manager_key="zarr_io")
    def some_movie():
        return _stream(movie, np.arange(30) / 20.0)

    @asset(partitions_def=lines_partitions, io_manager_key="parquet_io")
    def some_table(some_movie):
        return pd.DataFrame({"frame": np.arange(some_movie.n_frames),
                             "mean": np.asarray(some_movie.frames[:]).mean(axis=(1, 2))})

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(LINES_PARTITION, ["96"])
    res = materialize([some_movie, some_table], partition_key="96", instance=instance,
                      resources={"zarr_io": ZarrIOManager(base_path=str(tmp_path)),
                                 "parquet_io": ParquetIOManager(base_path=str(tmp_path))})
    assert res.success
    assert (tmp_path / "some_movie" / "96.zarr").is_dir()
    table = pd.read_parquet(tmp_path / "some_table" / "96.parquet")
    np.testing.assert_allclose(table["mean"], movie.mean(axis=(1, 2)))
    mat = res.asset_materializations_for_node("some_table")[0]
    assert mat.metadata["rows"].value == 30


def test_science_library_never_imports_dagster():
    code = ("import sys, pkgutil, importlib, ace_neuro\n"
            "for m in pkgutil.walk_packages(ace_neuro.__path__, 'ace_neuro.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('dagster', 'PyQt5', 'PySide6', 'tkinter')]\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_definitions_load():
    from ace_assets.definitions import defs
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert AssetKey("raw_movie") in keys and AssetKey("frame_times") in keys
