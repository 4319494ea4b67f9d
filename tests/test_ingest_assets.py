"""raw_movie / frame_times assets: the reader's stream through the zarr IO manager, metadata, filenames."""
import numpy as np
import pytest
from dagster import DagsterInstance, materialize

from ace_assets.definitions import build_resources
from ace_assets.ingest import frame_times, raw_movie
from ace_assets.partitions import sync_line_partitions
from ace_neuro import storage
from ace_neuro.synthetic import load_ground_truth, render_frames
from ace_neuro.synthetic.project import write_demo_project
from resources import ProjectResource


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_project(tmp_path_factory.mktemp("demo"), lines=(96, 97), height=48, width=56, n_frames=300,
                              frames_per_file=100)


def _run(demo, tmp_path, line, **overrides):
    instance = DagsterInstance.ephemeral()
    project = ProjectResource(project_path=str(demo.project_path), data_path=str(demo.data_path),
                              overrides=overrides)
    sync_line_partitions(instance, project.load())
    res = materialize([raw_movie, frame_times], partition_key=str(line), instance=instance,
                      resources=build_resources(project, str(tmp_path)))
    return res


def test_raw_movie_equals_the_recording_and_records_metadata(demo, tmp_path):
    res = _run(demo, tmp_path, 96)
    assert res.success
    movie = storage.open_movie(tmp_path / "raw_movie" / "96.zarr")
    truth = load_ground_truth(demo.ground_truth[96])
    np.testing.assert_array_equal(movie.frames[:], render_frames(truth, 0, 300))
    meta = res.asset_materializations_for_node("raw_movie")[0].metadata
    assert meta["shape"].value == [300, 48, 56]
    assert meta["frame_rate_hz"].value == pytest.approx(truth.frame_rate, rel=2e-3)
    assert meta["dropped_frames"].value == 0
    assert "data:image/png;base64," in meta["preview"].value  # projection preview shown by the UI


def test_dropped_frames_reach_the_frame_table(demo, tmp_path):
    res = _run(demo, tmp_path, 97)
    table = storage.read_table(tmp_path / "frame_times" / "97.parquet")
    n_dropped = len(demo.dropped_frames[97])
    assert n_dropped > 0 and int(table["dropped_before"].sum()) == n_dropped
    assert res.asset_materializations_for_node("raw_movie")[0].metadata["dropped_frames"].value == n_dropped


def test_filenames_override_selects_chunks(demo, tmp_path):
    assert _run(demo, tmp_path, 96, filenames=["1.avi"]).success
    movie = storage.open_movie(tmp_path / "raw_movie" / "96.zarr")
    truth = load_ground_truth(demo.ground_truth[96])
    np.testing.assert_array_equal(movie.frames[:], render_frames(truth, 100, 200))
    assert len(storage.read_table(tmp_path / "frame_times" / "96.parquet")) == 100
