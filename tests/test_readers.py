"""Raw readers on synthetic session folders in all three formats: every rule a reader must keep."""
import shutil

import numpy as np
import pytest

from ace_neuro.readers import CorruptVideoError, ReaderError, find_reader, open_recording
from ace_neuro.readers.onix import OnixReader
from ace_neuro.readers.ucla_daq import UclaDaqReader
from ace_neuro.readers.ucla_legacy import UclaLegacyV3Reader
from ace_neuro.synthetic import SyntheticConfig, render_frames, simulate_ground_truth
from ace_neuro.synthetic.formats import (corrupt_video, write_onix_session, write_ucla_v3_legacy_session,
                                         write_ucla_v4_session)


@pytest.fixture(scope="module")
def truth():
    cfg = SyntheticConfig(height=48, width=64, n_frames=230, n_neurons=6, frame_rate=29.97, motion="none", seed=3)
    return simulate_ground_truth(cfg)


@pytest.fixture(scope="module")
def movie(truth):
    return render_frames(truth, 0, truth.traces.shape[1])


def test_ucla_v4_reads_every_frame_in_numeric_order(tmp_path, truth, movie):
    # 20 frames per file -> 12 files: '10.avi' must come after '9.avi', not after '1.avi'
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=20, codec="FFV1")
    r = open_recording(s)
    assert isinstance(r, UclaDaqReader)
    assert [c.path.name for c in r.info.chunks][:3] == ["0.avi", "1.avi", "2.avi"]
    assert r.info.chunks[10].path.name == "10.avi"
    np.testing.assert_array_equal(r.read_all(), movie)
    assert r.info.frame_rate == pytest.approx(29.97, rel=2e-3)  # not the AVI header's 60
    assert r.info.n_dropped == 0 and r.info.warnings == ()
    assert r.info.times[0] == 0.0


def test_ucla_v4_grey_codec_and_behaviour_camera_ignored(tmp_path, truth, movie):
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=100, codec="GREY", behaviour_camera=True)
    r = open_recording(s)
    assert all("BehavCam" not in str(c.path) for c in r.info.chunks)
    np.testing.assert_array_equal(r.read_all(), movie)


def test_streaming_blocks_cover_the_movie_once(tmp_path, truth, movie):
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=50)
    r = open_recording(s)
    starts, total = [], 0
    for first, block in r.iter_blocks(32):
        assert block.shape[0] <= 32
        starts.append(first)
        total += len(block)
    assert total == len(movie) and starts == sorted(starts)


def test_dropped_frames_detected_and_counted(tmp_path, truth):
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=100, drop_frames=(50, 51, 120))
    r = open_recording(s)
    assert r.info.n_dropped == 3
    table = r.frame_table()
    assert table["dropped_before"].sum() == 3
    assert table.loc[table["after_drop"], "frame"].tolist() == [50, 118]
    assert r.info.frame_rate == pytest.approx(29.97, rel=5e-3)  # the dropped periods still count
    assert any("dropped" in w for w in r.info.warnings)


def test_frame_count_mismatch_reported_with_both_numbers(tmp_path, truth):
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=100, timestamp_extra_rows=4)
    r = open_recording(s)
    assert r.info.n_frames == 230
    assert any("230 frames" in w and "234" in w for w in r.info.warnings)


def test_legacy_v3(tmp_path, truth, movie):
    s = write_ucla_v3_legacy_session(tmp_path / "s", truth, frames_per_file=100)
    r = open_recording(s)
    assert isinstance(r, UclaLegacyV3Reader)
    assert [c.path.name for c in r.info.chunks] == ["msCam1.avi", "msCam2.avi", "msCam3.avi"]
    np.testing.assert_array_equal(r.read_all(), movie)
    assert r.info.frame_rate == pytest.approx(29.97, rel=5e-3)


def test_onix(tmp_path, truth, movie):
    s = write_onix_session(tmp_path / "s", truth)
    r = open_recording(s)
    assert isinstance(r, OnixReader)
    np.testing.assert_array_equal(r.read_all(), movie)
    assert r.info.frame_rate == pytest.approx(29.97, rel=2e-3)


def test_filenames_selects_chunks_and_fails_loudly(tmp_path, truth, movie):
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=100)
    r = open_recording(s, filenames=["1.avi"])
    np.testing.assert_array_equal(r.read_all(), movie[100:200])
    assert r.info.times[0] == 0.0 and len(r.info.times) == 100
    with pytest.raises(ReaderError, match=r"filenames \['7.avi'\] match no miniscope video"):
        open_recording(s, filenames=["7.avi"]).info


def test_truncated_video_names_file_and_frame(tmp_path, truth):
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=100)
    corrupt_video(s / "Miniscope" / "1.avi", keep_bytes=(s / "Miniscope" / "1.avi").stat().st_size // 3)
    with pytest.raises(CorruptVideoError, match=r"1\.avi.*frame \d+"):
        open_recording(s).read_all()


def test_unrecognised_folder_lists_what_was_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReaderError) as err:
        find_reader(tmp_path / "empty")
    msg = str(err.value)
    assert "no reader recognises" in msg and "msCam1.avi" in msg and "timeStamps.csv" in msg and "start-time" in msg


def test_reader_order_is_fixed_and_documented():
    from ace_neuro.readers import READERS
    assert [r.format_name for r in READERS] == ["onix", "ucla_legacy_v3", "ucla_daq", "nwb"]


def test_nested_daq_session_found(tmp_path, truth, movie):
    s = write_ucla_v4_session(tmp_path / "x" / "2023_09_01" / "10_15_30", truth, frames_per_file=100)
    assert s.exists()
    r = open_recording(tmp_path / "x")
    assert r.info.n_frames == len(movie)


@pytest.mark.parametrize("writer, video_dir, gone, later", [
    (write_ucla_v4_session, "Miniscope", "1.avi", "2.avi"),
    (write_ucla_v3_legacy_session, ".", "msCam2.avi", "msCam3.avi"),
])
def test_missing_middle_chunk_is_an_error_naming_it(tmp_path, truth, movie, writer, video_dir, gone, later):
    """Its timestamps would otherwise be given to the next file's frames."""
    s = writer(tmp_path / "s", truth, frames_per_file=100)
    vdir = next(p.parent for p in s.rglob(gone))
    (vdir / gone).unlink()
    with pytest.raises(ReaderError) as info:
        open_recording(s).info
    assert f"['{gone}'] are missing (before {later})" in str(info.value)
    assert "filenames=" in str(info.value)
    first = "0.avi" if gone == "1.avi" else "msCam1.avi"
    r = open_recording(s, filenames=[first])  # the files before the gap keep their own timestamps
    np.testing.assert_array_equal(r.read_all(), movie[:100])
    with pytest.raises(ReaderError, match="missing"):
        open_recording(s, filenames=[later]).info


def test_missing_first_chunk_is_an_error(tmp_path, truth):
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=100)
    (s / "Miniscope" / "0.avi").unlink()
    with pytest.raises(ReaderError, match=r"\['0.avi'\] are missing \(before 1.avi\)"):
        open_recording(s).info


def test_header_only_timestamps_are_an_error_not_an_empty_movie(tmp_path, truth):
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=100)
    ts = s / "Miniscope" / "timeStamps.csv"
    ts.write_text(ts.read_text().splitlines()[0] + "\n")
    with pytest.raises(ReaderError, match="the videos hold 230 frames, the timestamps list 0"):
        open_recording(s).info


def test_invalid_device_metadata_is_named_not_unrecognised(tmp_path, truth):
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=100)
    meta = s / "Miniscope" / "metaData.json"
    meta.write_text(meta.read_text()[:-3])  # cut short, as a failed copy leaves it
    with pytest.raises(ReaderError, match=r"Miniscope/metaData.json: not valid JSON \(line \d+, column \d+"):
        open_recording(s).info


def test_single_frame_recording_is_an_error_not_a_nan_frame_rate(tmp_path, truth):
    s = write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=100)
    ts = s / "Miniscope" / "timeStamps.csv"
    lines = ts.read_text().splitlines()
    ts.write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(ReaderError, match="holds a single frame"):
        open_recording(s).info
