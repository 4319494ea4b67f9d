"""nwb_file: one line through the whole graph into NWB, read back with pynwb and compared with every asset it came
from; nwbinspector finds no critical issue and no best-practice violation; the write is atomic."""
import os

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance
from pynwb import NWBHDF5IO

from ace_assets.export import nwb_path
from ace_assets.runner import materialize_lines
from ace_neuro import storage
from ace_neuro.export import NwbContents, NwbInputError, inspect_nwb, session_info, write_nwb
from ace_neuro.export.session import SubjectInfo, subject_from_row
from ace_neuro.errors import ProjectError
from ace_neuro.params import PipelineParams
from ace_neuro.stages.crop import CropBox, crop_box_from_coords
from ace_neuro.stages.motion import motion_result_from_arrays
from ace_neuro.synthetic.project import write_demo_project

LINE = 97  # UCLA V4 with dropped frames
CROP = (4, 60, 68, 6)  # x0, y0, x1, y1, origin bottom-left: rows 4..57, columns 4..67 of the 64 x 72 frame
OVERRIDES = {"nwb_include_movie": True, "pw_rigid": True, "strides": (24, 24), "overlaps": (8, 8)}


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    out = tmp_path_factory.mktemp("nwb")
    demo = write_demo_project(out, lines={LINE: "ucla_v4_grey_dropped"}, height=64, width=72, n_frames=300,
                              frames_per_file=100, crop_coords={LINE: CROP})
    root = out / "storage"
    [run] = materialize_lines([LINE], project_path=str(demo.project_path), data_path=str(demo.data_path),
                              storage_root=str(root), instance=DagsterInstance.ephemeral(), overrides=OVERRIDES,
                              run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    assert run.success, run.error
    return run, root, demo


@pytest.fixture(scope="module")
def nwb(line):
    _, root, _ = line
    with NWBHDF5IO(str(nwb_path(root, LINE)), "r") as f:
        yield f.read()


def _asset(root, name, suffix):
    path = root / name / f"{LINE}{suffix}"
    return storage.read_table(path) if suffix == ".parquet" else (
        storage.open_movie(path) if name.endswith("movie") else storage.read_bundle(path))


def test_the_file_is_where_the_layout_says_and_nothing_half_written_is_left(line):
    run, root, _ = line
    path = nwb_path(root, LINE)
    assert path == root / "nwb_file" / f"{LINE}.nwb" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary beside it
    meta = run.metadata["nwb_file"]
    assert meta["path"] == str(path) and meta["movie_included"] is True and meta["motion_included"] is True
    assert meta["n_components"] >= 1 and meta["dropped_frames"] == 3
    assert meta["nwbinspector"].startswith("clean")


def test_nwbinspector_finds_no_critical_issue_and_no_best_practice_violation(line):
    _, root, _ = line
    inspection = inspect_nwb(nwb_path(root, LINE))
    assert inspection is not None
    bad = [m for m in inspection.messages if m.startswith(("CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR"))]
    assert bad == [] and inspection.clean


def test_footprints_are_image_masks_on_the_raw_frame(line, nwb):
    _, root, _ = line
    est = _asset(root, "cnmfe_estimates", ".zarr")
    raw = _asset(root, "raw_movie", ".zarr")
    box = crop_box_from_coords(CROP, raw.frame_shape)
    seg = nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
    masks = seg["image_mask"].data[:]
    assert masks.shape == (est.n_components, *raw.frame_shape)
    for k in range(est.n_components):
        np.testing.assert_array_equal(masks[k][box.slices], est.footprint(k))
        outside = masks[k].copy()
        outside[box.slices] = 0
        assert not outside.any()
    assert (box.row0, box.row1, box.col0, box.col1) == (4, 58, 4, 68)


def test_accepted_and_rejected_with_snr_and_r_value(line, nwb):
    _, root, _ = line
    comps = _asset(root, "accepted_components", ".parquet")
    seg = nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
    np.testing.assert_array_equal(seg.id.data[:], comps["component_id"])
    np.testing.assert_array_equal(seg["accepted"].data[:], comps["accepted"])
    np.testing.assert_allclose(seg["snr"].data[:], comps["snr"])
    np.testing.assert_allclose(seg["r_value"].data[:], comps["r_value"])
    np.testing.assert_allclose(seg["centroid_y"].data[:], comps["centroid_y"] + 4)
    np.testing.assert_allclose(seg["centroid_x"].data[:], comps["centroid_x"] + 4)
    assert list(seg["reason"].data[:]) == comps["reason"].fillna("").astype(str).tolist()


def test_traces_and_timestamps_with_the_dropped_frames(line, nwb):
    _, root, _ = line
    est = _asset(root, "cnmfe_estimates", ".zarr")
    times = _asset(root, "frame_times", ".parquet")
    fl = nwb.processing["ophys"]["Fluorescence"]
    np.testing.assert_array_equal(fl["denoised"].data[:], est.C.T)
    np.testing.assert_allclose(fl["raw"].data[:], (est.C + est.YrA).T, rtol=1e-6)
    np.testing.assert_array_equal(fl["deconvolved"].data[:], est.S.T)
    np.testing.assert_array_equal(fl["denoised"].timestamps[:], times["time_s"])
    for name in ("raw", "deconvolved"):  # one copy of the timestamps, linked
        np.testing.assert_array_equal(fl[name].timestamps[:], times["time_s"])
    gaps = nwb.intervals["dropped_frames"].to_dataframe()
    after = times.index[times["after_drop"]].to_numpy()
    np.testing.assert_array_equal(gaps["frame_after"], after)
    np.testing.assert_array_equal(gaps["n_frames_dropped"], times.loc[after, "dropped_before"])
    np.testing.assert_allclose(gaps["stop_time"], times.loc[after, "time_s"])
    assert "3 frame(s) dropped" in fl["denoised"].comments


def test_motion_shifts_rigid_and_piecewise(line, nwb):
    _, root, _ = line
    movie = _asset(root, "motion_corrected_movie", ".zarr")
    r = motion_result_from_arrays({k: v[:] for k, v in movie.extras.items()}, PipelineParams().motion)
    ophys = nwb.processing["ophys"]
    np.testing.assert_array_equal(ophys["rigid_shifts"].data[:], r.rigid_shifts)
    assert r.patch_shifts is not None
    np.testing.assert_array_equal(ophys["patch_shifts"].data[:], r.patch_shifts)
    centers = ophys["patch_centers"].to_dataframe()
    np.testing.assert_array_equal(centers[["center_y", "center_x"]].to_numpy(), r.patch_centers.reshape(-1, 2))
    assert ophys["rigid_shifts"].unit == "pixels"


def test_events_with_a_reference_to_their_component(line, nwb):
    _, root, _ = line
    events = _asset(root, "calcium_events", ".parquet")
    assert len(events)
    table = nwb.processing["ophys"]["calcium_events"]
    for column in events.columns:
        got = table[column].data[:]
        if events[column].dtype.kind in "fiub":
            np.testing.assert_allclose(got, events[column].to_numpy())
        else:
            assert [g.decode() if isinstance(g, bytes) else g for g in got] == events[column].astype(str).tolist()
    np.testing.assert_array_equal(table["roi"].data[:], events["component_id"])


def test_the_movie_option_writes_the_motion_corrected_movie_compressed(line, nwb):
    _, root, _ = line
    movie = _asset(root, "motion_corrected_movie", ".zarr")
    series = nwb.processing["ophys"]["motion_corrected"]
    assert series.data.shape == movie.frames.shape and series.data.compression == "gzip"
    assert series.data.chunks[0] == 64
    np.testing.assert_array_equal(series.data[:], movie.frames[:])
    np.testing.assert_array_equal(series.timestamps[:], movie.times)


def test_metadata_of_the_subject_session_device_and_parameters(line, nwb):
    run, root, demo = line
    # the demo's experiments.csv has the columns DANDI needs: species, sex, age (days)
    assert nwb.subject.species == "Rattus norvegicus" and nwb.subject.sex == ("M" if LINE % 2 else "F")
    assert nwb.subject.age == f"P{80 + LINE % 7}D"
    assert nwb.subject.subject_id == "R230706B" and nwb.subject.weight.endswith(" kg")
    assert nwb.session_id == str(LINE)
    device = nwb.devices["Miniscope"]
    assert device.gain == "Low" and device.led0 == 20 and device.deviceType.startswith("Miniscope")
    assert list(device.ROI[:]) == [64, 72]
    assert nwb.imaging_planes["ImagingPlane"].imaging_rate == pytest.approx(29.97, rel=5e-3)
    params = nwb.processing["provenance"]["analysis_parameters"].to_dataframe()
    row = params[params["csv_name"] == "nwb_include_movie"].iloc[0]
    assert row["value_json"] == "true" and row["stage"] == "export"
    assert run.metadata["nwb_file"]["all_parameters_hash"] in nwb.source_script
    assert set(params["stage"]) == {f.name for f in __import__("dataclasses").fields(PipelineParams)}


# ------------------------------------------------------------------------------------- core, without Dagster
@pytest.fixture(scope="module")
def pieces(line):
    _, root, demo = line
    from ace_neuro.project import Project
    from ace_neuro.readers import open_recording

    project = Project.load(demo.project_path, demo.data_path)
    session = session_info(project.experiment(LINE), open_recording(project.session_dir(LINE)).info)
    raw = _asset(root, "raw_movie", ".zarr")
    contents = NwbContents(cnmfe=_asset(root, "cnmfe_estimates", ".zarr"),
                           components=_asset(root, "accepted_components", ".parquet"),
                           frame_times=_asset(root, "frame_times", ".parquet"), raw_frame_shape=raw.frame_shape,
                           crop_box=crop_box_from_coords(CROP, raw.frame_shape), parameters=PipelineParams().stages())
    return session, contents


def test_a_failed_write_leaves_no_file_and_the_previous_one_intact(pieces, tmp_path, monkeypatch):
    session, contents = pieces
    path = tmp_path / "nwb" / "1.nwb"
    first = write_nwb(path, session, contents)
    before = path.read_bytes()

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt  # as a Ctrl-C in the middle of writing

    monkeypatch.setattr(NWBHDF5IO, "write", killed)
    with pytest.raises(KeyboardInterrupt):
        write_nwb(path, session, contents)
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["1.nwb"]
    assert first.n_events == 0 and not first.movie_included and not first.motion_included


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(pieces, tmp_path):
    session, contents = pieces
    path = tmp_path / "2.nwb"
    stale = storage.temporary_sibling(path)
    stale = stale.with_name(stale.name.replace(f"-{os.getpid()}-", "-999999999-"))  # a writer that is gone
    stale.write_bytes(b"half an HDF5 file")
    write_nwb(path, session, contents)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.nwb"]


def test_results_that_do_not_belong_together_are_refused(pieces, tmp_path):
    session, contents = pieces
    import dataclasses

    short = contents.frame_times.iloc[:-1]
    with pytest.raises(NwbInputError, match="frames but the CNMF-E traces") as info:
        write_nwb(tmp_path / "x.nwb", session, dataclasses.replace(contents, frame_times=short))
    assert info.value.category == "environment" and "materialise" in info.value.fix
    with pytest.raises(NwbInputError, match="crop box"):
        write_nwb(tmp_path / "x.nwb", session, dataclasses.replace(contents, crop_box=CropBox(0, 64, 0, 72)))
    with pytest.raises(NwbInputError, match="components table"):
        write_nwb(tmp_path / "x.nwb", session, dataclasses.replace(contents, components=contents.components.iloc[1:]))
    with pytest.raises(ValueError, match="chunk_frames"):
        write_nwb(tmp_path / "x.nwb", session, contents, chunk_frames=0)
    assert not (tmp_path / "x.nwb").exists()


def test_subject_columns_are_read_and_bad_ones_named():
    s = subject_from_row("R1", {"Species": "mouse", "sex": "male", "age (weeks)": "12", "weight (g)": "25"})
    assert s == SubjectInfo(subject_id="R1", species="Mus musculus", sex="M", age="P12W", weight="25 g")
    assert subject_from_row("R/2", {"comments": "x"}) == SubjectInfo(subject_id="R-2")
    with pytest.raises(ProjectError, match="column 'age'") as info:
        subject_from_row("R1", {"age": "old"}, where="experiments.csv, row 5")
    assert "row 5" in str(info.value) and "ISO 8601" in info.value.fix
    with pytest.raises(ProjectError, match="date of birth"):
        subject_from_row("R1", {"date of birth": "yesterday"})


def test_without_subject_columns_the_file_says_what_to_add(pieces, tmp_path):
    session, contents = pieces
    import dataclasses

    bare = dataclasses.replace(session, subject=SubjectInfo(subject_id="R1"))
    result = write_nwb(tmp_path / "3.nwb", bare, contents)
    assert any("'species' column" in m for m in result.missing_metadata)
    assert any("'age' column" in m for m in result.missing_metadata)
    with NWBHDF5IO(str(result.path), "r") as f:
        assert f.read().subject.sex == "U"


class _CountingFrames:
    """A stored movie that records the most frames asked for at once."""

    def __init__(self, frames):
        self.frames, self.shape, self.dtype, self.most = frames, frames.shape, frames.dtype, 0

    def __getitem__(self, key):
        block = np.asarray(self.frames[key])
        self.most = max(self.most, block.shape[0] if block.ndim == 3 else 1)
        return block


def test_the_movie_is_copied_a_few_chunks_at_a_time(line, pieces, tmp_path):
    _, root, _ = line
    session, contents = pieces
    import dataclasses

    frames = _CountingFrames(_asset(root, "motion_corrected_movie", ".zarr").frames)
    result = write_nwb(tmp_path / "4.nwb", session, dataclasses.replace(contents, movie=frames), chunk_frames=16)
    assert result.movie_included and 0 < frames.most <= 4 * 16 < frames.shape[0]
    with NWBHDF5IO(str(result.path), "r") as f:
        data = f.read().processing["ophys"]["motion_corrected"].data
        assert data.chunks[0] == 16
        np.testing.assert_array_equal(data[:], frames.frames[:])


def test_a_line_without_components_still_gets_a_clean_file(pieces, tmp_path):
    session, contents = pieces
    import dataclasses

    est = contents.cnmfe
    none = dataclasses.replace(est, A=est.A[:, :0], C=est.C[:0], S=est.S[:0], YrA=est.YrA[:0], sn=est.sn[:0],
                               baseline=est.baseline[:0], g=est.g[:0])
    result = write_nwb(tmp_path / "5.nwb", session,
                       dataclasses.replace(contents, cnmfe=none, components=contents.components.iloc[:0]))
    assert (result.n_components, result.n_accepted, result.n_events) == (0, 0, 0)
    with NWBHDF5IO(str(result.path), "r") as f:
        ophys = f.read().processing["ophys"]
        assert "ImageSegmentation" not in ophys.data_interfaces and "Fluorescence" not in ophys.data_interfaces
    bad = [m for m in inspect_nwb(result.path).messages if m.startswith(("CRITICAL", "BEST_PRACTICE_VIOLATION"))]
    assert bad == []
