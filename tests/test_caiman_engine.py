"""The ``caiman`` engine: the runner's I/O and conversions without CaImAn, its errors, and (where
``ACE_CAIMAN_PYTHON`` points at a working CaImAn) a side-by-side run against the native engine."""
import ast
import dataclasses
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import scipy.sparse as sp

from ace_neuro.engines import EngineUnavailableError, get_engine
from ace_neuro.engines import caiman_engine as ce
from ace_neuro.engines import caiman_runner as runner
from ace_neuro.params import CnmfeParams, MotionParams, PipelineParams
from ace_neuro.stages.cnmfe.background import N_HARMONICS, RingModel, ring_radius


# --------------------------------------------------------------------------- the runner stays CaImAn-side
def test_the_runner_imports_only_the_standard_library_numpy_and_caiman():
    tree = ast.parse(open(runner.__file__).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "the runner runs as a script: no relative imports"
            names.add(node.module.split(".")[0])
    allowed = {"__future__", "json", "logging", "os", "re", "sys", "numpy", "caiman"}
    assert names <= allowed, names - allowed
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any("caiman" in ast.unparse(n) for n in top), "import caiman inside functions only"


# --------------------------------------------------------------------------- memmap files
def test_memmap_names_are_caimans_and_round_trip():
    name = runner.memmap_name("movie", (120, 160), 500, "C")
    assert name == "movie_d1_120_d2_160_d3_1_order_C_frames_500.mmap"
    assert runner.parse_memmap_name("/x/y/" + name) == ((120, 160), 500, "C")
    with pytest.raises(ValueError, match="order"):
        runner.memmap_name("movie", (2, 2), 3, "X")
    with pytest.raises(ValueError, match="memmap name"):
        runner.parse_memmap_name("movie.mmap")


@pytest.mark.parametrize("order", ["C", "F"])
def test_the_memmap_holds_the_movie_as_caiman_maps_it(tmp_path, order):
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(37, 9, 13)).astype(np.float32)
    path, lo = ce.write_memmap(frames, tmp_path, "movie", order, block_frames=5)
    assert path.name == runner.memmap_name("movie", (9, 13), 37, order) and lo == pytest.approx(frames.min())
    assert path.stat().st_size == frames.nbytes
    # what caiman.load_memmap + the CNMF demo do: Yr (H*W, T) in the name's order, images in F order
    Yr = np.memmap(path, np.float32, "r", shape=(9 * 13, 37), order=order)
    images = np.reshape(Yr.T, (37, 9, 13), order="F")
    np.testing.assert_array_equal(images, frames)
    if order == "F":
        np.testing.assert_array_equal(ce.read_fortran_frames(path, (9, 13), 4, 11), frames[4:11])


def test_fortran_pixels_is_caimans_pixel_order():
    block = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    yr = runner.fortran_pixels(block)
    assert yr.shape == (12, 2)
    np.testing.assert_array_equal(yr[:, 1], block[1].flatten(order="F"))
    np.testing.assert_array_equal(runner.frames_from_fortran_block(yr.T.ravel(), (3, 4)), block)


# --------------------------------------------------------------------------- parameters
def test_motion_parameters_map_one_to_one():
    p = MotionParams(pw_rigid=True, max_shifts=(9, 11), gSig_filt=(4, 5), strides=(40, 44), overlaps=(20, 22),
                     max_deviation_rigid=3, border_nan="nan", shifts_opencv=True, niter_rig=2,
                     upsample_factor_grid=3)
    kw = runner.motion_kwargs(dataclasses.asdict(p))
    assert kw == {"max_shifts": [9, 11], "gSig_filt": [4, 5], "strides": [40, 44], "overlaps": [20, 22],
                  "max_deviation_rigid": 3, "border_nan": True, "shifts_opencv": True, "niter_rig": 2,
                  "upsample_factor_grid": 3, "pw_rigid": True, "nonneg_movie": False}
    assert runner.motion_kwargs(dataclasses.asdict(dataclasses.replace(p, gSig_filt=None, border_nan="copy")))[
        "gSig_filt"] is None
    assert runner.motion_kwargs({**dataclasses.asdict(p), "border_nan": "zero"})["border_nan"] is False
    with pytest.raises(ValueError, match="border_nan"):
        runner.motion_kwargs({**dataclasses.asdict(p), "border_nan": "edge"})


def test_cnmfe_parameters_map_one_to_one():
    p = CnmfeParams(K=7, gSig=(4, 4), gSiz=(17, 17), min_corr=0.75, min_pnr=6.0, ring_size_factor=1.5, ssub=2,
                    tsub=3, ssub_B=2, rf=30, stride=15, p=2, decay_time=0.6, merge_thr=0.8, border_pix=2)
    d = runner.cnmf_params_dict(dataclasses.asdict(p), 20.0, (100, 120), n_processes=2)
    expect = {"fr": 20.0, "decay_time": 0.6, "dims": [100, 120], "method_init": "corr_pnr", "K": 7, "gSig": [4, 4],
              "gSiz": [17, 17], "min_corr": 0.75, "min_pnr": 6.0, "ring_size_factor": 1.5, "center_psf": True,
              "nb": 0, "ssub": 2, "tsub": 3, "ssub_B": 2, "normalize_init": False, "rf": 30, "stride": 15,
              "only_init": True, "low_rank_background": None, "nb_patch": 0, "del_duplicates": True,
              "border_pix": 2, "p": 2, "method_deconvolution": "oasis", "merge_thr": 0.8,
              "update_background_components": True, "n_processes": 2}
    assert d == expect
    # every CNMF-E parameter but the switches of this platform reaches CaImAn
    ours = {f.name for f in dataclasses.fields(CnmfeParams)} - {"enabled", "use_suggested"}
    assert ours <= set(d)
    assert runner.cnmf_params_dict({**dataclasses.asdict(p), "rf": None, "K": None}, 20.0, (8, 8))["rf"] is None


def test_ar_coefficients_are_padded_to_two():
    g = runner.padded_g([np.array([0.9]), np.array([0.8])], 2)
    np.testing.assert_array_equal(g, [[0.9, 0.0], [0.8, 0.0]])
    np.testing.assert_array_equal(runner.padded_g([[1.2, -0.3]], 1), [[1.2, -0.3]])
    assert runner.padded_g(None, 3).shape == (3, 2)


# --------------------------------------------------------------------------- results
def _caiman_like_cnmfe(H=12, W=10, K=3, T=20, seed=1):
    """Footprints/traces as CaImAn holds them (Fortran-order pixels, unit-norm columns) + the truth."""
    rng = np.random.default_rng(seed)
    imgs = np.zeros((K, H, W))
    for k in range(K):
        y, x = rng.integers(2, H - 2), rng.integers(2, W - 2)
        imgs[k, y - 1:y + 2, x - 1:x + 2] = rng.uniform(0.2, 1.0, (3, 3))
        imgs[k, y, x] = 2.0
    C = rng.uniform(0, 5, (K, T))
    norms = np.sqrt((imgs ** 2).sum(axis=(1, 2)))
    A_f = sp.csc_matrix(np.stack([im.flatten(order="F") / n for im, n in zip(imgs, norms)], axis=1))
    out = {"A_data": A_f.data, "A_indices": A_f.indices, "A_indptr": A_f.indptr, "A_shape": np.array(A_f.shape),
           "C": C * norms[:, None], "S": C * norms[:, None] / 2, "YrA": np.ones((K, T)) * norms[:, None],
           "bl": np.full(K, 0.5) * norms, "neurons_sn": np.full(K, 0.1) * norms, "g": runner.padded_g(
               [[0.9]] * K, K), "b0": rng.normal(size=(H, W)).flatten(order="F"), "n_frames": np.array(T)}
    return out, imgs, C


def test_cnmfe_results_become_c_order_peak_one_footprints_with_the_same_model():
    out, imgs, C = _caiman_like_cnmfe()
    H, W = imgs.shape[1:]
    conv = ce.cnmfe_arrays_from_caiman(out, (H, W), 2)
    A = conv["A"]
    assert isinstance(A, sp.csc_matrix) and A.shape == (H * W, 3) and A.dtype == np.float32
    np.testing.assert_allclose(A.max(axis=0).toarray().ravel(), 1.0)
    for k in range(3):  # pixel index y * W + x
        np.testing.assert_allclose(A[:, k].toarray().reshape(H, W), imgs[k] / imgs[k].max(), rtol=1e-6)
    np.testing.assert_allclose(conv["C"], C * imgs.max(axis=(1, 2))[:, None], rtol=1e-5)
    # A C is what CaImAn had
    A_f = sp.csc_matrix((out["A_data"], out["A_indices"], out["A_indptr"]), shape=tuple(out["A_shape"]))
    ac_caiman = (A_f @ out["C"]).reshape(H, W, -1, order="F")
    ac_ours = (A @ conv["C"]).reshape(H, W, -1)
    np.testing.assert_allclose(ac_ours, ac_caiman, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv["baseline"] / conv["sn"], 5.0)
    np.testing.assert_allclose(conv["b0"], out["b0"].reshape((W, H)).T)
    assert conv["grid"] == (6, 5) and conv["W"].shape == (30, 30)


def test_no_components_give_empty_arrays():
    out = {"A_shape": np.array([48, 0]), "n_frames": np.array(15)}
    conv = ce.cnmfe_arrays_from_caiman(out, (6, 8), 1)
    assert conv["A"].shape == (48, 0) and conv["C"].shape == (0, 15) and conv["b0"].shape == (6, 8)


def test_ring_weights_are_reordered_and_their_harmonics_recovered():
    h, w = 28, 31
    radius = ring_radius((13, 13), 1.4, 2)
    rng = np.random.default_rng(3)
    coef = rng.normal(size=(2 * N_HARMONICS + 1, h, w)).astype(np.float32)
    model = RingModel(dims=(2 * h, 2 * w), ssub_B=2, radius=radius, n_harmonics=N_HARMONICS, coef=coef,
                      b0=np.zeros((2 * h, 2 * w), np.float32))
    W_c = model.W.tocoo()
    # the same weights as CaImAn indexes them (Fortran order of the grid)
    to_f = lambda i: (i % w) * h + i // w  # noqa: E731
    W_f = sp.csr_matrix((W_c.data, (to_f(W_c.row), to_f(W_c.col))), shape=W_c.shape)
    back = ce.ring_weights_from_caiman(W_f.data, W_f.indices, W_f.indptr, W_f.shape, (h, w))
    assert abs(back - model.W).max() < 1e-6
    got = ce.ring_coefficients(back, (h, w), radius, N_HARMONICS)
    # where the whole ring is inside the grid the coefficients are unique; everywhere the weights are kept
    r = radius + 1
    assert h - 2 * r >= 4 and w - 2 * r >= 4
    np.testing.assert_allclose(got[:, r:h - r, r:w - r], coef[:, r:h - r, r:w - r], atol=1e-4)
    again = dataclasses.replace(model, coef=got).W
    assert abs(again - model.W).max() < 1e-3 * abs(model.W).max()


def test_shifts_change_sign_and_patch_shifts_take_the_grid_shape():
    T = 4
    shifts_rig = np.array([[1.0, -2.0], [0.5, 0.25], [0, 0], [-3, 1]])
    x = np.arange(T * 6, dtype=float).reshape(T, 6)  # axis 0 (rows) shifts, patches in C order of (2, 3)
    y = -x / 10
    out = {"shifts_rig": shifts_rig, "x_shifts_els": x, "y_shifts_els": y,
           "patch_centers_y": np.array([10.0, 30.0]), "patch_centers_x": np.array([8.0, 20.0, 32.0])}
    a = ce.motion_arrays_from_caiman(out, T)
    np.testing.assert_array_equal(a["rigid_shifts"], -shifts_rig)
    assert a["patch_shifts"].shape == (T, 2, 3, 2)
    assert a["patch_shifts"][2, 1, 0, 0] == -x[2, 3] and a["patch_shifts"][2, 1, 0, 1] == -y[2, 3]
    np.testing.assert_array_equal(a["patch_centers"][1, 2], [30.0, 32.0])
    assert "patch_shifts" not in ce.motion_arrays_from_caiman({"shifts_rig": shifts_rig}, T)
    # piecewise-rigid: the rigid shift of the piecewise pass, when the runner measured it
    els = shifts_rig + 0.5
    np.testing.assert_array_equal(ce.motion_arrays_from_caiman({**out, "shifts_rig_els": els}, T)["rigid_shifts"],
                                  -els)
    with pytest.raises(ce.CaimanRunError, match="patch grid"):
        ce.motion_arrays_from_caiman({**out, "patch_centers_x": np.array([1.0])}, T)


# --------------------------------------------------------------------------- the environment
def _fake_python(tmp_path, body: str):
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_no_interpreter_is_one_environment_error_that_says_what_to_do(monkeypatch):
    monkeypatch.delenv(ce.ENV_PYTHON, raising=False)
    monkeypatch.setattr("ace_neuro.engines.caiman_available", lambda: False)
    with pytest.raises(EngineUnavailableError) as info:
        get_engine("caiman")
    err = info.value
    assert err.category == "environment"
    assert "ACE_CAIMAN_PYTHON" in err.problem and "conda" in err.problem and "pip install caiman" in err.problem


def test_a_broken_interpreter_is_named_with_what_it_answered(monkeypatch, tmp_path):
    python = _fake_python(tmp_path, "echo 'ImportError: numpy.core.multiarray failed to import' >&2\nexit 1")
    monkeypatch.setenv(ce.ENV_PYTHON, python)
    with pytest.raises(EngineUnavailableError) as info:
        get_engine("caiman")
    assert python in info.value.problem and "numpy.core.multiarray failed" in info.value.problem
    monkeypatch.setenv(ce.ENV_PYTHON, str(tmp_path / "nowhere" / "python"))
    with pytest.raises(EngineUnavailableError, match="does not exist"):
        get_engine("caiman")


def test_a_working_interpreter_gives_the_engine_with_version_and_interpreter(monkeypatch, tmp_path):
    python = _fake_python(tmp_path, "echo 9.9.9")
    monkeypatch.setenv(ce.ENV_PYTHON, python)
    engine = get_engine("caiman")
    assert (engine.name, engine.version, engine.interpreter) == ("caiman", "9.9.9", python)
    assert get_engine("native").interpreter == sys.executable


def test_preflight_uses_the_same_probe(monkeypatch, tmp_path):
    from ace_neuro.stages.preflight import RecordingShape, check_before_compute

    python = _fake_python(tmp_path, "echo 'no caiman here' >&2; exit 3")
    monkeypatch.setenv(ce.ENV_PYTHON, python)
    params = dataclasses.replace(PipelineParams(), engine=dataclasses.replace(PipelineParams().engine, name="caiman"))
    with pytest.raises(EngineUnavailableError, match="no caiman here"):
        check_before_compute(params, RecordingShape(64, 64, 100, 20.0))


def _fake_runner(tmp_path, body: str):
    path = tmp_path / "fake_runner.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_progress_is_passed_on_and_failures_quote_the_runner(monkeypatch, tmp_path):
    monkeypatch.setattr(ce, "RUNNER", _fake_runner(tmp_path, """
        import json, sys
        job = json.load(open(sys.argv[1]))
        print("ACE-PROGRESS 0.500 half way", flush=True)
        print("something CaImAn printed", flush=True)
        if job["params"].get("fail"):
            sys.stderr.write("Traceback ...\\nValueError: gSiz too small\\n")
            sys.exit(4)
        import numpy as np
        np.savez(job["output"], x=np.arange(3))
        open(job["output"] + ".json", "w").write(json.dumps({"caiman_version": "x"}))
    """))
    seen = []
    work = tmp_path / "w1"
    work.mkdir()
    out = ce.run_job(sys.executable, {"task": "cnmfe", "output": str(work / "o.npz"), "params": {}}, work,
                     on_progress=lambda f, s: seen.append((f, s)))
    assert seen == [(0.5, "half way")] and list(out["x"]) == [0, 1, 2] and out["facts"]["caiman_version"] == "x"
    work = tmp_path / "w2"
    work.mkdir()
    with pytest.raises(ce.CaimanRunError) as info:
        ce.run_job(sys.executable, {"task": "cnmfe", "output": str(work / "o.npz"), "params": {"fail": 1}}, work)
    assert info.value.category == "environment" and "gSiz too small" in info.value.problem
    assert "exit code 4" in info.value.problem


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
def test_a_timeout_kills_the_runner_and_its_children(monkeypatch, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    monkeypatch.setattr(ce, "RUNNER", _fake_runner(tmp_path, f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("ACE-PROGRESS 0.1 sleeping", flush=True)
        time.sleep(60)
    """))
    t0 = time.monotonic()
    with pytest.raises(ce.CaimanRunError, match="did not finish within"):
        ce.run_job(sys.executable, {"task": "motion", "output": str(tmp_path / "o.npz"), "params": {}}, tmp_path,
                   timeout_s=3)
    assert time.monotonic() - t0 < 30
    pid = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the runner's child survived the timeout")


def test_caimans_own_limits_are_refused_before_it_runs(monkeypatch):
    from ace_neuro.stages.motion.validation import MotionParameterError

    engine = ce.CaimanEngine("/nonexistent/python", "1.12.1")
    movie = np.zeros((20, 64, 64), np.float32)
    with pytest.raises(MotionParameterError, match="shifts_opencv"):
        engine.correct_motion(movie, MotionParams(pw_rigid=True, shifts_opencv=False, max_shifts=(4, 4),
                                                  strides=(24, 24), overlaps=(8, 8)), frame_rate=20.0)


# --------------------------------------------------------------------------- side by side (needs CaImAn)
def _working_caiman() -> str | None:
    python = os.environ.get(ce.ENV_PYTHON)
    if not python:
        return "ACE_CAIMAN_PYTHON is not set (point it at a Python with CaImAn to run this test)"
    try:
        ce.probe_caiman(python)
    except EngineUnavailableError as e:
        return f"ACE_CAIMAN_PYTHON = {python} has no working CaImAn: {e.problem.splitlines()[0]}"
    return None


@pytest.fixture(scope="module")
def side_by_side():
    why = _working_caiman()
    if why:
        pytest.skip(why)
    from ace_neuro.stages.motion import motion_result_from_arrays
    from ace_neuro.synthetic.model import SyntheticConfig, simulate_movie

    cfg = SyntheticConfig(height=128, width=128, n_frames=600, n_neurons=16, motion="rigid", seed=4)
    movie, truth = simulate_movie(cfg)
    still, still_truth = simulate_movie(dataclasses.replace(cfg, motion="none"))
    mp = MotionParams(pw_rigid=True, max_shifts=(8, 8), gSig_filt=(4, 4))
    cp = CnmfeParams(min_pnr=6.0)
    out = {"cfg": cfg, "movie": movie, "truth": truth, "still": still, "still_truth": still_truth, "mp": mp}
    for name in ("native", "caiman"):
        engine = get_engine(name)
        stream = engine.correct_motion(movie, mp, frame_rate=cfg.frame_rate)
        corrected = np.concatenate(list(stream.blocks))
        out[name] = {"corrected": corrected, "motion": motion_result_from_arrays(stream.extras(), mp),
                     "attrs": stream.attrs,
                     "cnmfe": engine.run_cnmfe(still, cp, frame_rate=cfg.frame_rate)}
    return out


@pytest.mark.slow
def test_both_engines_recover_the_motion(side_by_side):
    truth = side_by_side["truth"]
    for name in ("native", "caiman"):
        r = side_by_side[name]["motion"]
        err = r.rigid_shifts - truth.shifts
        rmse = float(np.sqrt(((err - err.mean(axis=0)) ** 2).sum(axis=1).mean()))
        assert rmse < 0.15, (name, rmse)  # measured: native 0.049, caiman 0.066 px
        assert r.corr_after.mean() > r.corr_before.mean() + 0.05
        assert r.patch_shifts is not None and r.patch_shifts.shape[1:] == r.patch_centers.shape
        assert np.abs(r.patch_shifts - r.rigid_shifts[:, None, None]).max() <= side_by_side["mp"].max_deviation_rigid
    a, b = side_by_side["native"]["corrected"], side_by_side["caiman"]["corrected"]
    assert b.dtype == np.float32 and b.shape == a.shape
    assert abs(float(b.mean()) - float(side_by_side["movie"].mean())) < 0.5  # CaImAn adds no offset
    assert side_by_side["caiman"]["attrs"]["engine_interpreter"] == os.environ[ce.ENV_PYTHON]


@pytest.mark.slow
def test_both_engines_find_the_same_neurons_and_downstream_takes_either(side_by_side):
    from ace_neuro.stages.cnmfe import CnmfeResult
    from ace_neuro.stages.cnmfe.scoring import match_footprints, score_against_truth
    from ace_neuro.stages.evaluation import accepted_components

    truth = side_by_side["still_truth"]
    scores = {n: score_against_truth(side_by_side[n]["cnmfe"], truth) for n in ("native", "caiman")}
    assert scores["native"].f1 >= 0.9, scores["native"].summary()
    # measured on this recording: F1 1.00 for both; median trace r 0.9998 (native), 0.987 (caiman)
    assert scores["caiman"].f1 >= 0.9, scores["caiman"].summary()
    assert np.median(scores["caiman"].trace_r) >= 0.95
    nat, cai = side_by_side["native"]["cnmfe"], side_by_side["caiman"]["cnmfe"]
    m = match_footprints(cai.A, nat.A, min_similarity=0.7)
    assert len(m.found) >= 0.9 * min(nat.n_components, cai.n_components)  # measured 16 of 16
    r = [np.corrcoef(cai.C[i], nat.C[j])[0, 1] for i, j in zip(m.found, m.true)]
    assert np.median(r) >= 0.95  # measured 0.987
    again = CnmfeResult.from_arrays(cai.to_arrays())
    assert again.params["engine"] == "caiman" and again.n_components == cai.n_components
    table = accepted_components(side_by_side["still"], cai)
    assert len(table) == cai.n_components and table["accepted"].sum() >= 0.5 * cai.n_components
