"""Runs CaImAn for the ``caiman`` engine, inside CaImAn's own interpreter.

This file is executed as a script by the Python of an environment that has CaImAn
(``ACE_CAIMAN_PYTHON``)::

    python caiman_runner.py job.json

It depends only on the standard library, NumPy and (inside the functions that need it)
CaImAn: it must not import ace_neuro, zarr, pandas or dagster, which that environment
does not have. The platform's side (:mod:`ace_neuro.engines.caiman_engine`) writes the movie as a
CaImAn memory-mapped file, writes ``job.json``, runs this script and converts what it
writes back into the platform's result types.

Job file (JSON)::

    {"task": "motion" | "cnmfe", "movie": "<...>.mmap", "output": "<...>.npz",
     "params": {<CSV name>: value, ...}, "frame_rate": float, "n_processes": int,
     "min_mov": float (motion only)}

Output: ``output`` (.npz, no pickled objects) and ``output + ".json"`` (small facts: the
CaImAn version, the parameters as CaImAn received them, the corrected movie's file for
the motion task). Progress goes to stdout as lines ``ACE-PROGRESS <fraction> <step>``;
everything else CaImAn says goes to stderr.

The functions above :func:`run_motion` are plain NumPy/standard library and are unit-tested
in the platform's own interpreter.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys

import numpy as np

PROGRESS_PREFIX = "ACE-PROGRESS"
MEMMAP_NAME = re.compile(r"_d1_(\d+)_d2_(\d+)_d3_(\d+)_order_([CF])_frames_(\d+)\.mmap$")


# --------------------------------------------------------------------------- memmap files
def memmap_name(base: str, dims: tuple[int, int], n_frames: int, order: str) -> str:
    """CaImAn's file name for a movie of ``dims = (H, W)`` and ``n_frames``, in ``order`` 'C' or 'F'.

    CaImAn reads the shape from the name: the file holds float32 ``Yr`` of shape (H*W, T) whose
    pixel index is ``y + x * H`` (Fortran order of the frame); ``order`` 'C' stores each pixel's
    time series contiguously (what CNMF needs), 'F' stores each frame contiguously.
    """
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', got {order!r}")
    h, w = (int(d) for d in dims)
    return f"{base}_d1_{h}_d2_{w}_d3_1_order_{order}_frames_{int(n_frames)}.mmap"


def parse_memmap_name(path: str) -> tuple[tuple[int, int], int, str]:
    """``((H, W), T, order)`` from a CaImAn memmap file name."""
    m = MEMMAP_NAME.search(os.path.basename(path))
    if m is None or int(m.group(3)) != 1:
        raise ValueError(f"{path}: not a 2-D CaImAn memmap name (..._d1_H_d2_W_d3_1_order_X_frames_T.mmap)")
    return (int(m.group(1)), int(m.group(2))), int(m.group(5)), m.group(4)


def frames_from_fortran_block(flat: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """Frames (B, H, W) from B consecutive frames of an F-order memmap (B * H * W values)."""
    h, w = dims
    return np.asarray(flat, np.float32).reshape(-1, w, h).transpose(0, 2, 1)


def fortran_pixels(block: np.ndarray) -> np.ndarray:
    """A (B, H, W) block as (H*W, B), pixel index ``y + x * H`` (CaImAn's ``Yr`` columns)."""
    b = np.asarray(block, np.float32)
    return b.transpose(2, 1, 0).reshape(b.shape[2] * b.shape[1], b.shape[0])


# --------------------------------------------------------------------------- parameters
def _pair(v):
    return None if v is None else [int(v[0]), int(v[1])]


BORDER_NAN = {"copy": "copy", "nan": True, "zero": False}


def motion_kwargs(params: dict) -> dict:
    """Keyword arguments of ``caiman.motion_correction.MotionCorrect`` from our motion parameters.

    ``params`` are the platform's motion parameters by field name (``max_shifts``, ``gSig_filt``,
    ``strides``, ``overlaps``, ``max_deviation_rigid``, ``border_nan`` ('copy' / 'nan' / 'zero'),
    ``shifts_opencv``, ``niter_rig``, ``upsample_factor_grid``, ``pw_rigid``). The saved movie
    keeps the input's values (``nonneg_movie`` off).
    """
    border = params.get("border_nan", "copy")
    if border not in BORDER_NAN:
        raise ValueError(f"border_nan = {border!r}: expected one of {sorted(BORDER_NAN)}")
    return {
        "max_shifts": _pair(params["max_shifts"]),
        "gSig_filt": _pair(params.get("gSig_filt")),
        "strides": _pair(params["strides"]),
        "overlaps": _pair(params["overlaps"]),
        "max_deviation_rigid": int(params["max_deviation_rigid"]),
        "border_nan": BORDER_NAN[border],
        "shifts_opencv": bool(params["shifts_opencv"]),
        "niter_rig": int(params["niter_rig"]),
        "upsample_factor_grid": int(params["upsample_factor_grid"]),
        "pw_rigid": bool(params["pw_rigid"]),
        "nonneg_movie": False,
    }


def cnmf_params_dict(params: dict, frame_rate: float, dims: tuple[int, int], n_processes: int = 1) -> dict:
    """``caiman.source_extraction.cnmf.params.CNMFParams(params_dict=...)`` from our CNMF-E parameters.

    One to one by name (CaImAn's names are the CSV's): the 1-photon setup is CaImAn's
    (``method_init = 'corr_pnr'``, ``center_psf``, ring background with ``nb = 0``).
    """
    rf = params.get("rf")
    out = {
        "fr": float(frame_rate), "decay_time": float(params["decay_time"]), "dims": [int(d) for d in dims],
        "method_init": str(params.get("method_init", "corr_pnr")),
        "K": None if params.get("K") is None else int(params["K"]),
        "gSig": _pair(params["gSig"]), "gSiz": _pair(params["gSiz"]),
        "min_corr": float(params["min_corr"]), "min_pnr": float(params["min_pnr"]),
        "ring_size_factor": float(params["ring_size_factor"]), "center_psf": bool(params["center_psf"]),
        "nb": int(params["nb"]), "ssub": int(params["ssub"]), "tsub": int(params["tsub"]),
        "ssub_B": int(params["ssub_B"]), "normalize_init": bool(params["normalize_init"]),
        "rf": None if rf is None else int(rf), "stride": int(params["stride"]),
        "only_init": bool(params["only_init"]), "low_rank_background": params.get("low_rank_background"),
        "nb_patch": int(params["nb_patch"]), "del_duplicates": bool(params["del_duplicates"]),
        "border_pix": int(params["border_pix"]), "p": int(params["p"]),
        "method_deconvolution": str(params.get("method_deconvolution", "oasis")),
        "merge_thr": float(params["merge_thr"]),
        "update_background_components": bool(params["update_background_components"]),
        "n_processes": max(1, int(n_processes)),
    }
    if out["method_init"] != "corr_pnr":
        raise ValueError(f"method_init = {out['method_init']!r}: the caiman engine runs 1-photon CNMF-E ('corr_pnr')")
    return out


def padded_g(g_list, n_components: int) -> np.ndarray:
    """CaImAn's per-component AR coefficients (arrays of length p) as a (K, 2) array."""
    out = np.zeros((n_components, 2))
    if g_list is None:
        return out
    for k, g in enumerate(list(g_list)[:n_components]):
        g = np.atleast_1d(np.asarray(g, np.float64)).ravel()[:2]
        out[k, :len(g)] = g
    return out


# --------------------------------------------------------------------------- output
def progress(fraction: float, step: str) -> None:
    """One progress line for the platform (stdout)."""
    sys.stdout.write(f"{PROGRESS_PREFIX} {float(fraction):.3f} {step}\n")
    sys.stdout.flush()


def _plain(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


def _write(output: str, arrays: dict, facts: dict) -> None:
    tmp = output + ".part.npz"
    np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, output)
    with open(output + ".json.part", "w") as f:
        json.dump(facts, f, default=_plain)
    os.replace(output + ".json.part", output + ".json")


def _dview(n_processes: int):
    """A multiprocessing pool for CaImAn, or None for one process."""
    if n_processes <= 1:
        return None, None
    import caiman

    _, dview, n = caiman.cluster.setup_cluster(backend="multiprocessing", n_processes=int(n_processes))
    return dview, caiman


def _stop(dview, caiman_module) -> None:
    if dview is not None:
        caiman_module.stop_server(dview=dview)


# --------------------------------------------------------------------------- tasks
def piecewise_rigid_shifts(movie: str, template: np.ndarray, kwargs: dict, add_to_movie: float,
                           chunk: int = 200) -> np.ndarray:
    """The rigid shift of CaImAn's piecewise-rigid pass for every frame (T, 2), as CaImAn reports shifts.

    ``MotionCorrect`` keeps only the shifts of its rigid pass; its piecewise pass registers each
    frame rigidly again (the patch shifts are bounded around that shift) but does not return it.
    This repeats that registration with CaImAn's own functions and inputs.
    """
    from caiman.motion_correction import high_pass_filter_space, register_translation

    dims, n_frames, _ = parse_memmap_name(movie)
    h, w = dims
    gsf = kwargs["gSig_filt"]
    target = np.asarray(template, np.float64) + add_to_movie
    out = np.zeros((n_frames, 2))
    for s in range(0, n_frames, chunk):
        e = min(s + chunk, n_frames)
        flat = np.fromfile(movie, np.float32, count=(e - s) * h * w, offset=4 * s * h * w)
        for i, img in enumerate(frames_from_fortran_block(flat, dims)):
            img = np.asarray(img, np.float64)
            if gsf is not None:
                img = high_pass_filter_space(img, tuple(gsf))
            shift, _, _ = register_translation(img + add_to_movie, target, upsample_factor=10,
                                               max_shifts=tuple(kwargs["max_shifts"]))
            out[s + i] = -np.asarray(shift[:2])
    return out


def run_motion(job: dict) -> None:
    """MotionCorrect on an F-order memmap; the corrected movie stays where CaImAn wrote it."""
    import caiman
    from caiman.motion_correction import MotionCorrect, get_patch_centers

    movie = job["movie"]
    dims, n_frames, _ = parse_memmap_name(movie)
    kwargs = motion_kwargs(job["params"])
    dview, cm = _dview(int(job.get("n_processes", 1)))
    try:
        progress(0.05, "motion correction (CaImAn MotionCorrect)")
        mc = MotionCorrect([movie], min_mov=float(job["min_mov"]), dview=dview, **kwargs)
        mc.motion_correct(save_movie=True)
    finally:
        _stop(dview, cm)
    progress(0.95, "motion correction done")
    corrected = mc.mmap_file[0] if isinstance(mc.mmap_file, list) else mc.mmap_file
    # the template every frame was registered to: the rigid pass's (MotionCorrect replaces
    # total_template_els by the template its piecewise pass would use next)
    template = np.asarray(mc.total_template_rig, np.float64)
    arrays = {"shifts_rig": np.asarray(mc.shifts_rig, np.float64).reshape(n_frames, 2),
              "template": template.astype(np.float32)}
    facts = {"caiman_version": caiman.__version__, "corrected_movie": os.path.abspath(corrected),
             "caiman_params": kwargs}
    if kwargs["pw_rigid"]:
        progress(0.96, "rigid shifts of the piecewise-rigid pass")
        arrays["shifts_rig_els"] = piecewise_rigid_shifts(movie, template, kwargs, -float(job["min_mov"]))
        x = np.asarray(mc.x_shifts_els, np.float64)
        y = np.asarray(mc.y_shifts_els, np.float64)
        # without shifts_opencv CaImAn reports the shifts on its up-sampled patch grid
        cy, cx = get_patch_centers(dims, overlaps=tuple(kwargs["overlaps"]), strides=tuple(kwargs["strides"]),
                                   shifts_opencv=kwargs["shifts_opencv"],
                                   upsample_factor_grid=kwargs["upsample_factor_grid"])
        arrays.update(x_shifts_els=x, y_shifts_els=y, patch_centers_y=np.asarray(cy, np.float64),
                      patch_centers_x=np.asarray(cx, np.float64))
    _write(job["output"], arrays, facts)
    progress(1.0, "motion results written")


def run_cnmfe(job: dict) -> None:
    """CNMF-E (CaImAn's 1-photon setup) on a C-order memmap."""
    import caiman
    from caiman.source_extraction import cnmf

    movie = job["movie"]
    Yr, dims, T = caiman.load_memmap(movie)
    images = np.reshape(Yr.T, [T] + list(dims), order="F")
    n_processes = int(job.get("n_processes", 1))
    mapped = cnmf_params_dict(job["params"], float(job["frame_rate"]), tuple(dims), n_processes)
    opts = cnmf.params.CNMFParams(params_dict=mapped)
    dview, cm = _dview(n_processes)
    try:
        progress(0.05, "CNMF-E (CaImAn CNMF, corr_pnr, ring background)")
        cnm = cnmf.CNMF(n_processes=n_processes, dview=dview, params=opts)
        cnm.fit(images)
    finally:
        _stop(dview, cm)
    progress(0.9, "CNMF-E fitted; writing results")
    est = cnm.estimates
    A = est.A.tocsc() if est.A is not None and hasattr(est.A, "tocsc") else None
    K = 0 if A is None else int(A.shape[1])
    arrays = {"dims": np.asarray(dims, np.int64), "n_frames": np.asarray(T, np.int64)}
    if K:
        arrays.update(A_data=A.data.astype(np.float32), A_indices=A.indices.astype(np.int64),
                      A_indptr=A.indptr.astype(np.int64), A_shape=np.asarray(A.shape, np.int64),
                      C=np.asarray(est.C, np.float32), S=np.asarray(est.S, np.float32),
                      YrA=np.asarray(est.YrA, np.float32),
                      bl=np.asarray(est.bl if est.bl is not None else np.zeros(K), np.float64).ravel(),
                      neurons_sn=np.asarray(est.neurons_sn if est.neurons_sn is not None else np.zeros(K),
                                            np.float64).ravel(),
                      g=padded_g(est.g, K))
    else:
        arrays.update(A_shape=np.asarray((int(np.prod(dims)), 0), np.int64))
    W = getattr(est, "W", None)
    if W is not None:
        W = W.tocsr()
        arrays.update(W_data=W.data.astype(np.float32), W_indices=W.indices.astype(np.int64),
                      W_indptr=W.indptr.astype(np.int64), W_shape=np.asarray(W.shape, np.int64))
    b0 = getattr(est, "b0", None)
    if b0 is not None:
        arrays["b0"] = np.asarray(b0, np.float32).ravel()
    facts = {"caiman_version": caiman.__version__, "caiman_params": mapped,
             "ring_radius": int(round(mapped["ring_size_factor"] * mapped["gSiz"][0] / mapped["ssub_B"]))}
    _write(job["output"], arrays, facts)
    progress(1.0, "CNMF-E results written")


TASKS = {"motion": run_motion, "cnmfe": run_cnmfe}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    here = os.path.dirname(os.path.abspath(__file__))
    # run as a script, this file's folder is first on sys.path: keep the platform's modules out of the way
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    if len(argv) != 1:
        sys.stderr.write("usage: python caiman_runner.py job.json\n")
        return 2
    with open(argv[0]) as f:
        job = json.load(f)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    task = TASKS.get(job.get("task"))
    if task is None:
        sys.stderr.write(f"unknown task {job.get('task')!r}; expected one of {sorted(TASKS)}\n")
        return 2
    task(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
