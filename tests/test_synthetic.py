"""The synthetic forward model and the raw-format writers recover what they were built from."""
from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest
from scipy import ndimage, signal

from ace_neuro.synthetic import (
    SyntheticConfig,
    SyntheticConfigError,
    SyntheticFrames,
    cnmfe_filter_kernel,
    displacement_at,
    load_ground_truth,
    observed_traces,
    render_frames,
    render_scene,
    save_ground_truth,
    simulate_ground_truth,
    simulate_movie,
)
from ace_neuro.synthetic import formats as fm
from ace_neuro.synthetic.project import DEMO_FORMATS, DemoProjectError, write_demo_project

SMALL = dict(height=48, width=64, n_frames=40, n_neurons=6, seed=5)


def small(**kw) -> SyntheticConfig:
    return SyntheticConfig(**{**SMALL, **kw})


@pytest.fixture(scope="module")
def default_truth():
    return simulate_ground_truth(SyntheticConfig())


@pytest.fixture(scope="module")
def writer_truth():
    # 57 frames at 29.97 fps: 11-12 chunks of 5 frames, so numeric order (2 before 10) matters.
    return simulate_ground_truth(small(n_frames=57, frame_rate=29.97, seed=11))


def read_avi(path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[..., 0] if frame.ndim == 3 else frame)
    cap.release()
    return np.stack(frames) if frames else np.zeros((0, 0, 0), np.uint8)


# --------------------------------------------------------------------------- forward model
def test_same_seed_gives_same_bytes_and_another_seed_differs():
    a, ta = simulate_movie(small(motion="nonrigid"))
    b, tb = simulate_movie(small(motion="nonrigid"))
    c, _ = simulate_movie(small(motion="nonrigid", seed=6))
    assert a.dtype == np.uint8 and a.shape == (40, 48, 64)
    assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(ta.footprints, tb.footprints)
    np.testing.assert_array_equal(ta.displacement, tb.displacement)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("motion", ["none", "rigid", "nonrigid"])
def test_blocks_rendered_separately_equal_the_one_shot_movie(motion):
    truth = simulate_ground_truth(small(motion=motion))
    whole = render_frames(truth, 0, truth.n_frames)
    pieces = np.concatenate([render_frames(truth, s, e) for s, e in ((0, 1), (1, 17), (17, 17), (17, 40))])
    np.testing.assert_array_equal(whole, pieces)
    np.testing.assert_array_equal(render_frames(truth, 23, 24)[0], whole[23])
    lazy = SyntheticFrames(truth)
    assert lazy.shape == whole.shape and lazy.dtype == np.uint8
    np.testing.assert_array_equal(lazy[5:9], whole[5:9])
    np.testing.assert_array_equal(lazy[-1], whole[-1])
    np.testing.assert_array_equal(lazy[0:40:7, 3:9], whole[0:40:7, 3:9])


def test_ground_truth_round_trips_through_npz(tmp_path):
    truth = simulate_ground_truth(small(motion="nonrigid", ar_order=2))
    path = save_ground_truth(truth, tmp_path / "sub" / "gt.npz")
    loaded = load_ground_truth(path)
    assert loaded.config == truth.config and loaded.frame_rate == truth.frame_rate
    for name in ("footprints", "centers", "traces", "spikes", "shifts", "displacement", "background_spatial",
                 "background_temporal", "bleach", "vessels", "noise_std", "pnr", "snr", "pnr_cnmfe",
                 "ar_coefficients", "radii", "brightness", "grid_y", "grid_x"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(truth, name), err_msg=name)
    np.testing.assert_array_equal(render_frames(loaded, 0, 40), render_frames(truth, 0, 40))
    with np.load(path, allow_pickle=False) as z:  # no pickle anywhere
        assert json.loads(str(z["meta_json"]))["config"]["seed"] == 5
    rigid = simulate_ground_truth(small())
    assert load_ground_truth(save_ground_truth(rigid, tmp_path / "r.npz")).displacement is None


def test_background_is_brighter_than_neurons_and_smooth(default_truth):
    t = default_truth
    mean_bg = np.tensordot(t.background_temporal.mean(axis=1), t.background_spatial, axes=1)
    assert 60 <= mean_bg.mean() <= 100
    assert np.median(t.traces.max(axis=1)) < 0.75 * mean_bg.mean()
    gy, gx = np.gradient(t.background_spatial[0])
    assert np.hypot(gy, gx).max() < 2.0  # counts per pixel: large smooth blobs
    # slow fluctuation around 1, and photobleaching loses bleach_fraction
    assert abs(t.background_temporal[0].mean() - 1) < 0.05
    assert t.bleach[0] == pytest.approx(1.0)
    assert t.bleach[-1] == pytest.approx(1 - 0.2, abs=0.01)
    assert np.all(np.diff(t.bleach) < 0)
    # dark vessels on some, not most, of the field
    assert 0.01 < np.mean(t.vessels < 0.9) < 0.3 and t.vessels.max() <= 1.0


def test_rigid_shifts_stay_within_max_shift_and_move(default_truth):
    s = default_truth.shifts
    assert s.shape == (1000, 2)
    assert np.abs(s).max() < 4.0
    assert s.std(axis=0).min() > 0.4
    assert default_truth.displacement is None
    still = simulate_ground_truth(small(motion="none"))
    assert not still.shifts.any()


def test_nonrigid_field_is_smooth_and_bounded():
    cfg = small(motion="nonrigid", height=160, width=192, n_frames=300, n_neurons=4)
    truth = simulate_ground_truth(cfg)
    assert truth.displacement.shape == (300, 2, truth.grid_y.size, truth.grid_x.size)
    bound = cfg.max_shift_px + cfg.nonrigid_amplitude_px
    spatial_spread = []
    for t in (0, 150, 299):
        d = displacement_at(truth, t)
        assert d.shape == (2, 160, 192) and np.abs(d).max() < bound
        residual = d - truth.shifts[t][:, None, None]
        assert np.abs(residual).max() <= cfg.nonrigid_amplitude_px + 1e-5
        assert np.abs(np.diff(d, axis=1)).max() < 0.2  # smooth: < 0.2 px change per pixel
        spatial_spread.append(residual.std())
    assert max(spatial_spread) > 0.05  # really non-rigid


def test_warp_moves_content_by_plus_displacement():
    truth = simulate_ground_truth(small(height=96, width=96, n_frames=30, n_neurons=8, max_shift_px=3.0, seed=2))
    t = int(np.argmax(np.abs(truth.shifts).sum(axis=1)))
    dy, dx = truth.shifts[t]
    assert math.hypot(dy, dx) > 0.5
    reference = render_scene(truth, t, warped=False)
    observed = render_scene(truth, t)
    inner = (slice(8, -8), slice(8, -8))
    moved = ndimage.shift(reference, (dy, dx), order=3, mode="mirror")
    wrong = ndimage.shift(reference, (-dy, -dx), order=3, mode="mirror")
    err, err_wrong = np.abs(observed - moved)[inner].max(), np.abs(observed - wrong)[inner].max()
    assert err < 0.5 and err_wrong > 4 * err


def test_footprints_are_blurred_somas_some_overlapping(default_truth):
    a = default_truth.footprints
    assert a.shape == (40, 200, 200) and a.dtype == np.float32
    np.testing.assert_allclose(a.max(axis=(1, 2)), 1.0)
    support = (a > 0).sum(axis=(1, 2))
    soma_area = np.pi * default_truth.radii ** 2
    assert np.all(support > 1.5 * soma_area)  # the 1-photon blur spreads beyond the soma
    both = np.einsum("khw,jhw->kj", (a > 0.25).astype(np.float32), (a > 0.25).astype(np.float32))
    np.fill_diagonal(both, 0)
    assert both.max() > 0  # some footprints overlap substantially
    r = default_truth.radii
    assert r.min() >= 3.5 and r.max() <= 6.0 and r.std() > 0.4


def test_spikes_are_sparse_and_traces_follow_the_ar_model(default_truth):
    t = default_truth
    rate = (t.spikes > 0).mean() * t.frame_rate
    assert 0.15 < rate < 0.5  # per neuron, Poisson around 0.3 Hz
    g = t.ar_coefficients[0]
    assert g == pytest.approx(math.exp(-1 / (0.4 * 30)))
    np.testing.assert_allclose(t.traces[:, 1:], g * t.traces[:, :-1] + t.spikes[:, 1:], rtol=1e-4, atol=1e-3)
    ar2 = simulate_ground_truth(small(ar_order=2, n_frames=300, spike_rate_hz=1.0))
    g1, g2 = ar2.ar_coefficients
    rec = signal.lfilter([1.0], [1.0, -g1, -g2], ar2.spikes.astype(np.float64), axis=1)
    np.testing.assert_allclose(ar2.traces, rec, rtol=1e-4, atol=1e-3)
    # rise: the peak comes a few frames after the spike
    k = int(np.argmax((ar2.spikes > 0).sum(axis=1)))
    first = int(np.flatnonzero(ar2.spikes[k])[0])
    assert np.argmax(ar2.traces[k, first:first + 15]) > 0


def test_default_recording_has_most_but_not_all_neurons_above_min_pnr(default_truth):
    frac = float(np.mean(default_truth.pnr_cnmfe > 10))
    assert 0.6 <= frac <= 0.95
    assert np.all(default_truth.snr[default_truth.pnr > 0] > 0)
    # observed traces are the truth dimmed by the vessels and bleaching
    obs = observed_traces(default_truth)
    assert np.all(obs <= default_truth.traces + 1e-4)


def test_cnmfe_pnr_matches_the_pnr_image_of_the_filtered_movie():
    movie, truth = simulate_movie(SyntheticConfig(height=96, width=96, n_frames=600, n_neurons=8,
                                                  motion="none", seed=4))
    k = cnmfe_filter_kernel((3, 3)).astype(np.float32)
    filt = np.stack([cv2.filter2D(f.astype(np.float32), -1, k, borderType=cv2.BORDER_REFLECT) for f in movie])
    filt -= np.median(filt, axis=0)
    sn = np.median(np.abs(np.diff(filt, axis=0)), axis=0) / (0.6745 * math.sqrt(2))
    pnr_img = filt.max(axis=0) / sn
    ratios = []
    for i in range(truth.n_neurons):
        if truth.pnr_cnmfe[i] < 5:
            continue
        y, x = np.round(truth.centers[i]).astype(int)
        ratios.append(pnr_img[y - 2:y + 3, x - 2:x + 3].max() / truth.pnr_cnmfe[i])
    assert len(ratios) >= 4
    assert 0.8 < np.median(ratios) < 1.25


def test_noise_std_matches_the_rendered_noise():
    cfg = small(n_frames=300, n_neurons=0, motion="none", bleach_fraction=0.0, background_fluctuation=0.0,
                neuropil_fraction=0.0)
    movie, truth = simulate_movie(cfg)
    ratio = movie.astype(np.float64).std(axis=0) / truth.noise_std
    assert 0.93 < np.median(ratio) < 1.07
    expected = np.clip(np.rint(truth.background_spatial[0] * truth.vessels), 0, 255)
    assert np.abs(movie.mean(axis=0) - expected).mean() < 0.3
    gauss = simulate_movie(SyntheticConfig(**{**cfg.to_dict(), "noise_model": "gaussian"}))[0]
    assert 0.93 < np.median(gauss.astype(np.float64).std(axis=0) / truth.noise_std) < 1.07


def test_invalid_settings_and_ranges_name_what_to_fix(tmp_path):
    with pytest.raises(SyntheticConfigError, match="motion"):
        SyntheticConfig(motion="wobbly")
    with pytest.raises(SyntheticConfigError, match="soma_radius_px"):
        SyntheticConfig(soma_radius_px=(6.0, 3.0))
    with pytest.raises(SyntheticConfigError, match="rise_time"):
        SyntheticConfig(ar_order=2, rise_time=1.0)
    with pytest.raises(SyntheticConfigError, match="n_neurons"):
        simulate_ground_truth(SyntheticConfig(height=32, width=32, n_neurons=200))
    truth = simulate_ground_truth(small())
    with pytest.raises(SyntheticConfigError, match="frame range"):
        render_frames(truth, 10, 41)
    with pytest.raises(SyntheticConfigError, match="frame index"):
        displacement_at(truth, 40)
    with pytest.raises(SyntheticConfigError, match=".npz"):
        save_ground_truth(truth, tmp_path / "gt.pickle")
    with pytest.raises(FileNotFoundError):
        load_ground_truth(tmp_path / "missing.npz")
    with pytest.raises(SyntheticConfigError, match="unknown"):
        SyntheticConfig.from_dict({"height": 64, "colour": "green"})


# --------------------------------------------------------------------------- writers
def test_ucla_v4_session_layout_frames_and_timestamps(tmp_path, writer_truth):
    truth = writer_truth
    drops = (3, 20, 21)
    session = fm.write_ucla_v4_session(tmp_path / "s", truth, frames_per_file=5, drop_frames=drops,
                                       timestamp_extra_rows=2)
    dev = session / "Miniscope"
    n_kept = 57 - len(drops)
    assert sorted(p.name for p in dev.glob("*.avi")) == sorted(f"{i}.avi" for i in range(math.ceil(n_kept / 5)))
    session_meta = json.loads((session / "metaData.json").read_text())
    assert session_meta["miniscopes"] == ["Miniscope"] and session_meta["cameras"] == ["BehavCam_1"]
    assert {"researcherName", "experimentName", "recordingStartTime"} <= set(session_meta)
    meta = json.loads((dev / "metaData.json").read_text())
    assert meta["deviceType"] == "Miniscope_V4_BNO" and meta["frameRate"] == "30FPS"
    assert meta["framesPerFile"] == 5 and meta["compression"] == "FFV1"
    assert meta["ROI"] == {"height": 48, "leftEdge": 0, "topEdge": 0, "width": 64}
    assert (session / "notes.csv").read_text().splitlines()[0] == "Time Stamp (ms),Note"

    # chunks in numeric order hold exactly the kept frames; AVI headers say 60 fps and FFV1
    assert len(list(dev.glob("*.avi"))) == 11
    video = np.concatenate([read_avi(dev / f"{i}.avi") for i in range(11)])
    keep = [i for i in range(57) if i not in drops]
    np.testing.assert_array_equal(video, render_frames(truth, 0, 57)[keep])
    header = fm.avi_header(dev / "10.avi")
    assert header["fps"] == 60.0 and header["fourcc"] == "FFV1" and header["n_frames"] == 4
    assert cv2.VideoCapture(str(dev / "0.avi")).get(cv2.CAP_PROP_FPS) == 60.0

    rows = list(csv.reader((dev / "timeStamps.csv").read_text().splitlines()))
    assert rows[0] == ["Frame Number", "Time Stamp (ms)", "Buffer Index"]
    table = np.array(rows[1:], dtype=float)
    assert len(table) == n_kept + 2  # the two extra rows have no video frame
    np.testing.assert_array_equal(table[:, 0], np.arange(n_kept + 2))
    assert table[0, 1] == -12
    intervals = np.diff(table[:, 1])
    period = 1000 / 29.97
    assert np.sum(intervals > 1.5 * period) == 2  # gaps where frames 3 and 20-21 were dropped
    assert intervals[intervals > 1.5 * period] == pytest.approx([2 * period, 3 * period], abs=2)
    rate = 1000 * (len(table) - 1 + len(drops)) / (table[-1, 1] - table[0, 1])
    assert rate == pytest.approx(29.97, abs=0.03)

    behav = session / "BehavCam_1"
    assert json.loads((behav / "metaData.json").read_text())["deviceType"] == "WebCam-320x240"
    assert read_avi(behav / "0.avi").shape == (10, 240, 320)
    assert (behav / "timeStamps.csv").read_text().startswith("Frame Number,Time Stamp (ms),Buffer Index\n")


def test_ucla_v4_grey_codec_and_daq_frame_numbers(tmp_path, writer_truth):
    session = fm.write_ucla_v4_session(tmp_path / "g", writer_truth, frames_per_file=1000, codec="GREY",
                                       drop_frames=(7,), daq_frame_number=True, behaviour_camera=False,
                                       device_name="My_V4_Miniscope")
    dev = session / "My_V4_Miniscope"
    assert fm.avi_header(dev / "0.avi")["fourcc"] == "GREY"
    assert json.loads((dev / "metaData.json").read_text())["compression"] == "GREY"
    assert not (session / "BehavCam_1").exists()
    np.testing.assert_array_equal(read_avi(dev / "0.avi"), np.delete(render_frames(writer_truth, 0, 57), 7, axis=0))
    rows = (dev / "timeStamps.csv").read_text().splitlines()
    assert rows[0] == "Frame Number,Time Stamp (ms),Buffer Index,DAQ Frame Number"
    daq = [int(r.split(",")[3]) for r in rows[1:]]
    assert daq[:8] == [1, 2, 3, 4, 5, 6, 7, 9]


def test_legacy_v3_session_layout_and_interleaved_timestamps(tmp_path, writer_truth):
    session = fm.write_ucla_v3_legacy_session(tmp_path / "v3", writer_truth, frames_per_file=5, drop_frames=(10,))
    names = sorted(p.name for p in session.glob("*.avi"))
    assert names == sorted([f"msCam{i}.avi" for i in range(1, 13)] + ["behavCam1.avi", "behavCam2.avi"])
    video = np.concatenate([read_avi(session / f"msCam{i}.avi") for i in range(1, 13)])
    np.testing.assert_array_equal(video, np.delete(render_frames(writer_truth, 0, 57), 10, axis=0))
    assert fm.avi_header(session / "msCam1.avi")["fps"] == 60.0
    lines = (session / "timestamp.dat").read_text().splitlines()
    assert lines[0] == "camNum\tframeNum\tsysClock\tbuffer"
    rows = np.array([[int(v) for v in ln.split("\t")] for ln in lines[1:]])
    assert rows[0, 2] == 0 and np.all(np.diff(rows[:, 2]) >= 0)  # interleaved by time
    scope, behav = rows[rows[:, 0] == 1], rows[rows[:, 0] == 0]
    assert len(scope) == 56 and len(behav) == 10
    np.testing.assert_array_equal(scope[:, 1], np.arange(1, 57))
    np.testing.assert_array_equal(behav[:, 1], np.arange(1, 11))
    assert behav[-1, 2] > scope[len(scope) // 2, 2]  # the behaviour rows are spread over the session
    gaps = np.diff(scope[:, 2])
    assert np.argmax(gaps) == 9 and gaps.max() == pytest.approx(2000 / 29.97, abs=2)
    assert set(rows[:, 3]) <= {0, 1, 2, 3}


def test_onix_session_layout_clock_and_video(tmp_path, writer_truth):
    session = fm.write_onix_session(tmp_path / "onix", writer_truth, index=2, drop_frames=(0, 30))
    assert sorted(p.name for p in session.iterdir()) == [
        "start-time_2_miniscope.csv", "ucla-miniscope-v4-clock_2.raw", "ucla-miniscope-v4-video_2.avi"]
    fields = (session / "start-time_2_miniscope.csv").read_text().strip().split(",")
    assert fields == ["2023-09-01T10:15:30.1234567-07:00", "250000000", "4096", "4096"]
    ticks = np.fromfile(session / "ucla-miniscope-v4-clock_2.raw", dtype="<u8")
    assert ticks.size == 55 and ticks[0] > 10 ** 9 and np.all(np.diff(ticks.astype(np.int64)) > 0)
    dt = np.diff(ticks.astype(np.float64)) / 250e6
    assert np.sum(dt > 1.5 / 29.97) == 1
    rate = (ticks.size - 1 + 1) / ((ticks[-1] - ticks[0]) / 250e6)  # one frame missing inside (frame 30)
    assert rate == pytest.approx(29.97, abs=0.01)
    video = read_avi(session / "ucla-miniscope-v4-video_2.avi")
    np.testing.assert_array_equal(video, np.delete(render_frames(writer_truth, 0, 57), [0, 30], axis=0))
    assert fm.avi_header(session / "ucla-miniscope-v4-video_2.avi")["fps"] == 60.0


def test_corrupt_video_truncates_the_file(tmp_path, writer_truth):
    session = fm.write_ucla_v4_session(tmp_path / "c", writer_truth, frames_per_file=1000, codec="GREY",
                                       behaviour_camera=False)
    path = session / "Miniscope" / "0.avi"
    size = path.stat().st_size
    fm.corrupt_video(path, size // 2)
    assert path.stat().st_size == size // 2
    assert len(read_avi(path)) < 57
    with pytest.raises(fm.SyntheticFormatError, match="keep_bytes"):
        fm.corrupt_video(path, size)


def test_writers_reject_bad_options_and_leave_nothing_half_written(tmp_path, writer_truth, monkeypatch):
    with pytest.raises(fm.SyntheticFormatError, match="codec"):
        fm.write_ucla_v4_session(tmp_path / "a", writer_truth, codec="MJPG")
    with pytest.raises(fm.SyntheticFormatError, match="drop_frames"):
        fm.write_onix_session(tmp_path / "b", writer_truth, drop_frames=(57,))
    with pytest.raises(fm.SyntheticFormatError, match="frames_per_file"):
        fm.write_ucla_v3_legacy_session(tmp_path / "c", writer_truth, frames_per_file=0)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(fm.SyntheticFormatError, match="not empty"):
        fm.write_ucla_v4_session(busy, writer_truth)

    def boom(truth, start, stop):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(fm, "render_frames", boom)
    with pytest.raises(RuntimeError):
        fm.write_ucla_v4_session(tmp_path / "half", writer_truth)
    assert not (tmp_path / "half").exists()
    assert not any(p.name.startswith(".half") for p in tmp_path.iterdir())


# --------------------------------------------------------------------------- demo project
def test_demo_project_writes_lab_style_csvs_sessions_and_truth(tmp_path):
    demo = write_demo_project(tmp_path, height=64, width=64, n_frames=60, frames_per_file=25,
                              crop_coords={98: (4, 60, 60, 4)})
    assert demo.formats == {96: "ucla_v4_ffv1", 97: "ucla_v4_grey_dropped", 98: "ucla_v3_legacy", 99: "onix"}
    assert set(DEMO_FORMATS) == set(demo.formats.values())
    lines = (demo.project_path / "experiments.csv").read_text().splitlines()
    rows = list(csv.reader(lines))
    assert rows[0] == ["line number", "id", "date (YYMMDD)", "calcium imaging directory", "Box Calcium Folder ID",
                       "ephys directory", "rat weight (kg)", "species", "sex", "age (days)",
                       "systemic drug", "comments"]
    assert not rows[1][0].isdigit()  # documentation row
    assert all(not any(r) for r in rows[-3:])  # empty trailing rows
    by_line = {int(r[0]): r for r in rows[2:] if r[0].isdigit()}
    assert by_line[96][3] == "R230706B\\230901\\calcium"
    assert "NA" in sum(by_line.values(), [])
    for ln, r in by_line.items():
        folder = demo.data_path.joinpath(*r[3].replace("\\", "/").split("/"))
        assert folder == demo.session_dirs[ln] and folder.is_dir()
    assert (demo.session_dirs[96] / "Miniscope" / "2.avi").is_file()
    assert (demo.session_dirs[98] / "msCam3.avi").is_file()
    assert (demo.session_dirs[99] / "start-time_0_miniscope.csv").is_file()
    assert demo.dropped_frames[97] == (20, 21, 40)

    params = list(csv.DictReader((demo.project_path / "analysis_parameters.csv").read_text().splitlines()))
    p = {int(r["line number"]): r for r in params if r["line number"]}
    assert set(p) == {96, 97, 98, 99}
    assert p[96]["gSig"] == "(3, 3)" and p[96]["min_corr"] == "0.8" and p[96]["apply_motion_correction"] == "TRUE"
    assert p[98]["crop_coords"] == "(4, 60, 60, 4)" and p[96]["crop_coords"] == ""
    assert p[99]["pw_rigid"] == "TRUE" and p[96]["pw_rigid"] == "FALSE"
    for ln in p:
        truth = demo.truth(ln)
        assert truth.n_frames == 60 and truth.frame_shape == (64, 64)
        bound = int(p[ln]["max_shifts"].strip("()").split(",")[0])
        assert np.abs(truth.shifts).max() + (truth.config.nonrigid_amplitude_px if truth.displacement is not None
                                             else 0) < bound
        assert float(p[ln]["window_length"]) <= truth.n_frames / truth.frame_rate
    # re-running replaces what it wrote
    again = write_demo_project(tmp_path, height=64, width=64, n_frames=60, frames_per_file=25)
    assert again.session_dirs == demo.session_dirs
    with pytest.raises(DemoProjectError, match="overwrite"):
        write_demo_project(tmp_path, height=64, width=64, n_frames=60, overwrite=False)
    with pytest.raises(DemoProjectError, match="kind"):
        write_demo_project(tmp_path / "x", lines={5: "tiff"})


_STREAM_SCRIPT = """
import resource, sys
from ace_neuro.synthetic import SyntheticConfig, simulate_ground_truth
from ace_neuro.synthetic.formats import write_ucla_v4_session
n = int(sys.argv[2])
truth = simulate_ground_truth(SyntheticConfig(height=608, width=608, n_frames=n, n_neurons=60,
                                              noise_model="gaussian", seed=1))
write_ucla_v4_session(sys.argv[1], truth, frames_per_file=1000, block_frames=200, behaviour_camera=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_writer_memory_does_not_grow_with_recording_length(tmp_path):
    import subprocess
    import sys

    peaks = {}
    for n in (400, 2400):
        out = subprocess.run([sys.executable, "-c", _STREAM_SCRIPT, str(tmp_path / f"s{n}"), str(n)],
                             capture_output=True, text=True, check=True)
        peaks[n] = int(out.stdout.split()[-1]) / 1024  # MiB
        assert len(list((tmp_path / f"s{n}" / "Miniscope").glob("*.avi"))) == math.ceil(n / 1000)
    # 6x the frames (0.9 GB of raw video at 2400 frames) within a few tens of MiB of the same peak
    assert peaks[2400] < peaks[400] + 64, peaks
