"""NWB files as raw data: the reader streams an imaging series block by block from HDF5, times it from timestamps
or a rate, refuses what it cannot read with the file's name, and a synthetic session written to NWB gives the same
components as the original."""
import csv
import io
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
from dagster import AssetSelection, DagsterInstance

from ace_assets.parameters import PARAMETER_ASSETS
from ace_assets.runner import materialize_lines
from ace_neuro import storage
from ace_neuro.export import write_recording_nwb
from ace_neuro.readers import ReaderError, find_reader, open_recording
from ace_neuro.readers.nwb import NwbFileError, NwbReader
from ace_neuro.readers.ucla_daq import UclaDaqReader
from ace_neuro.synthetic import SyntheticConfig, render_frames, simulate_ground_truth
from ace_neuro.synthetic.formats import frame_times_s, write_ucla_v4_session
from ace_neuro.synthetic.project import write_demo_project

START = datetime(2024, 3, 5, 14, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def truth():
    return simulate_ground_truth(SyntheticConfig(height=40, width=52, n_frames=150, n_neurons=5, motion="none",
                                                 frame_rate=29.97, seed=5))


@pytest.fixture(scope="module")
def movie(truth):
    return render_frames(truth, 0, truth.traces.shape[1])


def _session(tmp_path, movie, times, name="rec.nwb", **kwargs):
    folder = tmp_path / "session"
    folder.mkdir(parents=True, exist_ok=True)
    write_recording_nwb(folder / name, movie, times, session_start_time=START, subject_id="R1", **kwargs)
    return folder


def test_reads_every_frame_block_by_block_with_the_files_timestamps(tmp_path, truth, movie):
    times = frame_times_s(truth)  # jittered like a real rig's clock
    folder = _session(tmp_path, movie, times, chunk_frames=16)
    reader = open_recording(folder)
    assert isinstance(reader, NwbReader) and reader.info.format == "nwb"
    info = reader.info
    assert (info.n_frames, info.height, info.width, info.dtype) == (150, 40, 52, "uint8")
    np.testing.assert_allclose(info.times, times - times[0])
    assert info.frame_rate == pytest.approx(29.97, rel=5e-3) and info.n_dropped == 0 and info.warnings == ()
    assert info.metadata["neurodata_type"] == "OnePhotonSeries" and info.device.startswith("Miniscope")
    starts = []
    for first, block in reader.iter_blocks(32):
        assert 0 < len(block) <= 32
        np.testing.assert_array_equal(block, movie[first:first + len(block)])
        starts.append(first)
    assert starts == list(range(0, 150, 32))
    table = reader.frame_table()
    assert set(table["source_file"]) == {"rec.nwb"} and len(table) == 150


def test_a_rate_instead_of_timestamps_and_dropped_frames_from_gaps(tmp_path, movie):
    folder = _session(tmp_path, movie, np.arange(150) / 20.0)
    info = open_recording(folder).info
    assert info.metadata["timing"] == "rate" and info.frame_rate == pytest.approx(20.0)
    np.testing.assert_allclose(info.times, np.arange(150) / 20.0)

    times = np.arange(150) / 20.0 + 0.0001 * (np.arange(150) % 3)
    times[100:] += 0.1  # two frames lost before frame 100
    gaps = tmp_path / "gaps"
    gaps.mkdir()
    write_recording_nwb(gaps / "g.nwb", movie, times, session_start_time=START, subject_id="R1")
    info = open_recording(gaps).info
    assert info.n_dropped == 2 and info.dropped_before[100] == 2
    assert any("dropped" in w and "g.nwb" in w for w in info.warnings)


def test_recognised_last_so_a_rigs_own_folder_wins_and_temporaries_are_ignored(tmp_path, truth, movie):
    rig = write_ucla_v4_session(tmp_path / "rig", truth, frames_per_file=100)
    write_recording_nwb(rig / "export.nwb", movie, frame_times_s(truth), session_start_time=START, subject_id="R1")
    assert find_reader(rig) is UclaDaqReader
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".line.nwb.tmp-host-1-abc").write_bytes(b"partial")
    with pytest.raises(ReaderError, match="no reader recognises"):
        find_reader(hidden)


def test_two_files_no_series_bad_shapes_and_damaged_files_name_the_file(tmp_path, truth, movie):
    times = frame_times_s(truth)
    two = _session(tmp_path / "a", movie, times, name="one.nwb")
    write_recording_nwb(two / "two.nwb", movie, times, session_start_time=START, subject_id="R1")
    with pytest.raises(NwbFileError, match="several NWB files") as info:
        open_recording(two).info
    assert "one.nwb" in str(info.value) and info.value.category == "raw data"

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "rec.nwb").write_bytes(b"not an HDF5 file at all")
    with pytest.raises(NwbFileError, match=r"rec\.nwb: cannot be opened") as info:
        open_recording(damaged).info
    assert info.value.file.endswith("rec.nwb")

    empty = tmp_path / "empty"
    empty.mkdir()
    with h5py.File(empty / "rec.nwb", "w") as f:
        f.create_group("acquisition").create_group("running").attrs["neurodata_type"] = "TimeSeries"
    with pytest.raises(NwbFileError, match=r"no imaging series.*TimeSeries.*OnePhotonSeries in acquisition"):
        open_recording(empty).info

    def edited(name, change):
        folder = _session(tmp_path / name, movie, times)
        with h5py.File(folder / "rec.nwb", "a") as f:
            change(f["acquisition/OnePhotonSeries"])
        return folder

    def four_d(series):
        del series["data"]
        series.create_dataset("data", data=np.zeros((5, 4, 4, 3), np.uint8))

    with pytest.raises(NwbFileError, match=r"shape \(5, 4, 4, 3\).*3-D"):
        open_recording(edited("fourd", four_d)).info

    def one_frame(series):
        del series["data"], series["timestamps"]
        series.create_dataset("data", data=np.zeros((1, 4, 4), np.uint8))
        series.create_dataset("timestamps", data=np.zeros(1))

    with pytest.raises(NwbFileError, match="at least two"):
        open_recording(edited("one", one_frame)).info

    def backwards(series):
        ts = series["timestamps"][:]
        ts[10] = ts[9] - 0.01
        series["timestamps"][:] = ts

    with pytest.raises(NwbFileError, match=r"rec\.nwb: timestamps are not increasing at frame 10"):
        open_recording(edited("back", backwards)).info

    def untimed(series):
        del series["timestamps"]

    with pytest.raises(NwbFileError, match="neither timestamps nor starting_time"):
        open_recording(edited("untimed", untimed)).info
    with pytest.raises(ReaderError, match="match no miniscope video"):
        NwbReader(edited("names", lambda s: None), filenames=["other.nwb"]).info
    with pytest.raises(ValueError, match="block_frames"):
        next(iter(NwbReader(edited("blocks", lambda s: None)).iter_blocks(0)))


def test_the_writer_refuses_times_that_do_not_fit(tmp_path, movie):
    with pytest.raises(ValueError, match="149 frame times for 150 frames"):
        write_recording_nwb(tmp_path / "x.nwb", movie, np.arange(149) / 30.0, session_start_time=START,
                            subject_id="R1")
    assert not (tmp_path / "x.nwb").exists()


# ------------------------------------------------------------------------------------------ round trip
def _add_line(demo, source: int, line: int, folder: str) -> None:
    """A copy of line ``source`` whose session is ``folder``, in both CSVs."""
    for path, column in ((demo.experiments_csv, "calcium imaging directory"), (demo.parameters_csv, None)):
        rows = list(csv.reader(io.StringIO(path.read_text())))
        header = rows[0]
        src = next(r for r in rows if r and r[0] == str(source))
        new = list(src)
        new[0] = str(line)
        if column:
            new[header.index(column)] = folder
        last = max(i for i, r in enumerate(rows) if any(c.strip() for c in r))
        rows.insert(last + 1, new)
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(rows)
        path.write_text(out.getvalue(), newline="")


def test_a_session_written_to_nwb_gives_the_same_components(tmp_path):
    demo = write_demo_project(tmp_path, lines={96: "ucla_v4_ffv1"}, height=64, width=72, n_frames=300,
                              frames_per_file=100)
    root = tmp_path / "storage"
    upto = AssetSelection.assets("accepted_components").upstream() | AssetSelection.assets(*PARAMETER_ASSETS)
    kwargs = dict(project_path=str(demo.project_path), data_path=str(demo.data_path), storage_root=str(root),
                  instance=DagsterInstance.ephemeral(), selection=upto,
                  run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    [original] = materialize_lines([96], **kwargs)
    assert original.success, original.error
    raw = storage.open_movie(root / "raw_movie" / "96.zarr")
    times = raw.times  # the recording's own frame times, stored with the movie
    write_recording_nwb(demo.data_path / "nwb_session" / "96.nwb", raw.frames, times, session_start_time=START,
                        subject_id="R230706B", chunk_frames=32)
    _add_line(demo, 96, 196, "nwb_session")
    [again] = materialize_lines([196], **kwargs)
    assert again.success, again.error
    assert again.metadata["raw_movie"]["format"] == "nwb"
    np.testing.assert_array_equal(storage.open_movie(root / "raw_movie" / "196.zarr").frames[:], raw.frames[:])
    a = storage.read_bundle(root / "cnmfe_estimates" / "96.zarr")
    b = storage.read_bundle(root / "cnmfe_estimates" / "196.zarr")
    assert a.n_components == b.n_components >= 1
    np.testing.assert_allclose(b.A.toarray(), a.A.toarray(), atol=1e-5)
    np.testing.assert_allclose(b.C, a.C, rtol=1e-4, atol=1e-3 * float(np.abs(a.C).max()))
    ca = storage.read_table(root / "accepted_components" / "96.parquet")
    cb = storage.read_table(root / "accepted_components" / "196.parquet")
    np.testing.assert_array_equal(cb["accepted"], ca["accepted"])
    np.testing.assert_allclose(cb[["centroid_y", "centroid_x"]], ca[["centroid_y", "centroid_x"]], atol=0.01)


def test_an_nwb_sessions_start_time_and_device_reach_the_exported_file(tmp_path, truth, movie):
    from ace_neuro.export import session_info
    from ace_neuro.project import Experiment

    times = 2.5 + frame_times_s(truth)  # the first frame 2.5 s after the source file's session start
    info = open_recording(_session(tmp_path, movie, times, device_type="Miniscope_V4_BNO")).info
    experiment = Experiment(line_num=5, subject_id="R1", date="240305", session_dir_text="session", row=3,
                            metadata={"line number": "5", "species": "rat"})
    session = session_info(experiment, info)
    assert session.session_start_time == START.replace(second=2, microsecond=500000)
    assert "source NWB file" in session.start_time_source
    assert session.device_type == "Miniscope_V4_BNO" and session.subject.species == "Rattus norvegicus"
