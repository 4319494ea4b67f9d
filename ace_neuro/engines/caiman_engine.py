"""The ``caiman`` engine: CaImAn's motion correction and CNMF-E, run in CaImAn's own interpreter.

CaImAn cannot share this environment (it needs NumPy < 2 and SciPy < 1.17 and imports
TensorFlow), so it runs in the Python of an environment that has it, named by the
environment variable ``ACE_CAIMAN_PYTHON`` (e.g. a lab's conda environment:
``conda activate caiman; which python``). This module

1. streams the movie (zarr, block by block) into a CaImAn memory-mapped file, which CaImAn
   maps without loading it;
2. writes a job file with the parameters under their CSV names and runs
   :mod:`ace_neuro.engines.caiman_runner` there as a script (progress lines are passed on,
   a timeout and an interruption kill the runner's whole process group);
3. converts what the runner wrote into this platform's result types: a
   :class:`~ace_neuro.movie.MovieStream` with the motion extras of the native engine, and a
   :class:`~ace_neuro.stages.cnmfe.CnmfeResult`.

Environment variables: ``ACE_CAIMAN_PYTHON`` (the interpreter), ``ACE_CAIMAN_PROCESSES``
(CaImAn worker processes, default one per core), ``ACE_CAIMAN_TIMEOUT_S`` (per stage,
default 24 h), ``ACE_CAIMAN_TMPDIR`` (where the memory-mapped movies go, default the system's
temporary folder; they need about twice the movie's float32 size for motion correction).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import scipy.sparse as sp

from . import EngineUnavailableError
from . import caiman_runner as runner

log = logging.getLogger(__name__)

ENV_PYTHON = "ACE_CAIMAN_PYTHON"
ENV_PROCESSES = "ACE_CAIMAN_PROCESSES"
ENV_TIMEOUT = "ACE_CAIMAN_TIMEOUT_S"
ENV_TMPDIR = "ACE_CAIMAN_TMPDIR"
RUNNER = Path(runner.__file__).resolve()
PROBE_CODE = ("import caiman, caiman.source_extraction.cnmf, caiman.motion_correction, numpy; "
              "print(caiman.__version__)")
PROBE_TIMEOUT_S = 300.0
DEFAULT_TIMEOUT_S = 24 * 3600.0
#: float32 bytes per block written to / read from the memory-mapped files
BLOCK_BYTES = 128 * 2 ** 20
#: corrected frames averaged for the reference that corr_before / corr_after / residual_shift are measured against
MEASURE_TEMPLATE_FRAMES = 300

INSTALL_HINT = ("Point the platform at a Python that has CaImAn: install CaImAn with conda in its own "
                "environment (conda create -n caiman -c conda-forge caiman; CaImAn 1.12 needs NumPy < 2 and "
                "SciPy < 1.17, so it cannot live in this environment), then set ACE_CAIMAN_PYTHON to that "
                "environment's python (conda activate caiman; which python). Or set engine to 'native' (or leave "
                "the cell empty). Do not `pip install caiman`: that PyPI package is an unrelated MicroPython tool.")


class CaimanRunError(EngineUnavailableError):
    """CaImAn started but failed, timed out or wrote no results (its last words are in the message)."""


# --------------------------------------------------------------------------- the interpreter
def caiman_python() -> str | None:
    """The interpreter that runs CaImAn: ``ACE_CAIMAN_PYTHON``; else this one if CaImAn is importable
    here; else None."""
    from . import caiman_available

    value = os.environ.get(ENV_PYTHON, "").strip()
    if value:
        return value
    return sys.executable if caiman_available() else None


def _tail(text: str, n: int = 6) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return "\n".join(lines[-n:]) if lines else "(nothing)"


@lru_cache(maxsize=8)
def _probe(python: str, stamp: float) -> str:
    try:
        proc = subprocess.run([python, "-c", PROBE_CODE], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise EngineUnavailableError(f"engine = 'caiman': {ENV_PYTHON} = {python!r} does not exist. "
                                     + INSTALL_HINT) from None
    except PermissionError:
        raise EngineUnavailableError(f"engine = 'caiman': {ENV_PYTHON} = {python!r} cannot be executed. "
                                     + INSTALL_HINT) from None
    except subprocess.TimeoutExpired:
        raise EngineUnavailableError(f"engine = 'caiman': {python} did not finish `import caiman` within "
                                     f"{PROBE_TIMEOUT_S:.0f} s. " + INSTALL_HINT) from None
    version = proc.stdout.strip().splitlines()[-1].strip() if proc.stdout.strip() else ""
    if proc.returncode != 0 or not version:
        raise EngineUnavailableError(
            f"engine = 'caiman': {python} could not import CaImAn (`python -c \"import caiman\"` exited with "
            f"{proc.returncode}); it answered:\n{_tail(proc.stderr or proc.stdout)}\n" + INSTALL_HINT)
    return version


def probe_caiman(python: str) -> str:
    """CaImAn's version in ``python``; raises :class:`EngineUnavailableError` saying what it answered.

    The answer is remembered per interpreter (and its modification time) for this process.
    """
    try:
        stamp = os.stat(python).st_mtime
    except OSError:
        stamp = -1.0
    return _probe(str(python), stamp)


def engine_interpreter() -> tuple[str, str]:
    """``(python, caiman_version)`` of the configured CaImAn; raises the one environment error if none works."""
    python = caiman_python()
    if python is None:
        raise EngineUnavailableError(f"engine = 'caiman' but {ENV_PYTHON} is not set, so there is no Python "
                                     "with CaImAn to run. " + INSTALL_HINT)
    return python, probe_caiman(python)


# --------------------------------------------------------------------------- memmap files
def _block_frames(h: int, w: int) -> int:
    return max(1, min(1024, BLOCK_BYTES // (4 * h * w)))


def write_memmap(frames, folder: str | os.PathLike, base: str, order: str,
                 block_frames: int | None = None) -> tuple[Path, float]:
    """Stream a (T, H, W) movie into a CaImAn memmap file in ``folder``; its path and the movie's minimum.

    Never holds more than one block: ``order`` 'F' (frames contiguous) is written
    sequentially; 'C' (each pixel's trace contiguous, what CaImAn's CNMF needs) is written
    block by block through a mapping that is closed after every block, so the writer's
    memory does not grow with the movie.
    """
    t, h, w = (int(v) for v in frames.shape)
    path = Path(folder) / runner.memmap_name(base, (h, w), t, order)
    bf = int(block_frames or _block_frames(h, w))
    lo = np.inf
    if order == "F":
        with open(path, "wb") as f:
            for s in range(0, t, bf):
                block = np.asarray(frames[s:min(s + bf, t)], np.float32)
                lo = min(lo, float(np.nanmin(block)))
                f.write(np.ascontiguousarray(block.transpose(0, 2, 1)).tobytes())
    else:
        with open(path, "wb") as f:
            f.truncate(4 * t * h * w)
        for s in range(0, t, bf):
            block = np.asarray(frames[s:min(s + bf, t)], np.float32)
            lo = min(lo, float(np.nanmin(block)))
            mm = np.memmap(path, np.float32, "r+", shape=(h * w, t), order="C")
            mm[:, s:s + len(block)] = runner.fortran_pixels(block)
            mm.flush()
            del mm
    return path, lo


def read_fortran_frames(path: str | os.PathLike, dims: tuple[int, int], start: int, stop: int) -> np.ndarray:
    """Frames ``[start, stop)`` of an F-order CaImAn memmap as (B, H, W) float32 (read, not mapped)."""
    h, w = dims
    n = (stop - start) * h * w
    flat = np.fromfile(path, dtype=np.float32, count=n, offset=4 * start * h * w)
    if flat.size != n:
        raise CaimanRunError(f"CaImAn's corrected movie {path} is shorter than expected; re-run motion correction")
    return runner.frames_from_fortran_block(flat, dims)


# --------------------------------------------------------------------------- running the runner
def _timeout() -> float:
    try:
        return float(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def _processes() -> int:
    try:
        return max(1, int(os.environ.get(ENV_PROCESSES, "") or (os.cpu_count() or 1)))
    except ValueError:
        return max(1, os.cpu_count() or 1)


def _kill_group(proc: subprocess.Popen) -> None:
    """Terminate the runner and everything it started (its own process group)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_job(python: str, job: dict, workdir: Path, *, on_progress: Callable[[float, str], None] | None = None,
            timeout_s: float | None = None) -> dict:
    """Run the runner on ``job`` in ``python``; the arrays it wrote (and its facts under ``"facts"``).

    Progress lines go to ``on_progress(fraction, step)``; other stdout lines to the log. The
    runner's stderr goes to ``workdir/runner.log``; its last lines are in the error when it fails.
    """
    job_path = workdir / f"{job['task']}_job.json"
    job_path.write_text(json.dumps(job))
    err_path = workdir / f"{job['task']}_runner.log"
    timeout_s = _timeout() if timeout_s is None else float(timeout_s)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2",
           "CAIMAN_TEMP": str(workdir)}
    env.pop("PYTHONPATH", None)  # this environment's packages must not leak into CaImAn's
    lines: queue.Queue = queue.Queue()
    with open(err_path, "w") as err:
        proc = subprocess.Popen([python, str(RUNNER), str(job_path)], stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL, text=True, cwd=str(workdir), env=env,
                                start_new_session=True)

        def pump() -> None:
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, name="caiman-runner-stdout", daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CaimanRunError(f"CaImAn ({job['task']}) did not finish within {timeout_s:.0f} s "
                                         f"({ENV_TIMEOUT}); it was stopped. Its log: {err_path}")
                try:
                    line = lines.get(timeout=min(left, 1.0))
                except queue.Empty:
                    continue
                if line is None:
                    break
                line = line.rstrip("\n")
                if line.startswith(runner.PROGRESS_PREFIX):
                    parts = line.split(" ", 2)
                    try:
                        fraction, step = float(parts[1]), parts[2] if len(parts) > 2 else ""
                    except (IndexError, ValueError):
                        log.info("CaImAn: %s", line)
                        continue
                    log.info("CaImAn: %s (%.0f%%)", step, 100 * fraction)
                    if on_progress is not None:
                        on_progress(fraction, step)
                elif line.strip():
                    log.info("CaImAn: %s", line)
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            if proc.poll() is None:
                _kill_group(proc)
    if proc.returncode != 0:
        said = _tail(err_path.read_text(errors="replace"), 8)
        raise CaimanRunError(f"CaImAn ({job['task']}, {python}) failed with exit code {proc.returncode}; its last "
                             f"lines:\n{said}\nFull log: {err_path}",
                             fix="check the parameters against CaImAn's limits (or use engine = native); "
                                 "the log has CaImAn's traceback.")
    out = Path(job["output"])
    if not out.exists() or not Path(str(out) + ".json").exists():
        raise CaimanRunError(f"CaImAn ({job['task']}) exited without writing {out}; log: {err_path}")
    with np.load(out, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["facts"] = json.loads(Path(str(out) + ".json").read_text())
    return arrays


def _workdir(prefix: str) -> Path:
    base = os.environ.get(ENV_TMPDIR) or None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


# --------------------------------------------------------------------------- conversions
def fortran_to_c_pixels(index: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """Pixel indices ``y + x * H`` (CaImAn) as ``y * W + x`` (this platform)."""
    h, w = dims
    index = np.asarray(index, np.int64)
    return (index % h) * w + index // h


def footprints_from_caiman(data, indices, indptr, shape, dims: tuple[int, int]) -> sp.csc_matrix:
    """CaImAn's A (csc, Fortran-order pixels) as (H*W, K) csc with pixel index ``y * W + x``."""
    A = sp.csc_matrix((np.asarray(data, np.float32), fortran_to_c_pixels(indices, dims), np.asarray(indptr)),
                      shape=tuple(int(v) for v in shape))
    A.sort_indices()
    return A


def ring_weights_from_caiman(data, indices, indptr, shape, grid: tuple[int, int]) -> sp.csr_matrix:
    """CaImAn's ring weights W (pixels x pixels of the ``ssub_B`` grid, Fortran order) in C order."""
    W = sp.csr_matrix((np.asarray(data, np.float32), np.asarray(indices), np.asarray(indptr)),
                      shape=tuple(int(v) for v in shape)).tocoo()
    rows = fortran_to_c_pixels(W.row, grid)
    cols = fortran_to_c_pixels(W.col, grid)
    out = sp.csr_matrix((W.data, (rows, cols)), shape=W.shape)
    out.sort_indices()
    return out


def ring_coefficients(W: sp.csr_matrix, grid: tuple[int, int], radius: int, n_harmonics: int,
                      ridge: float = 1e-6) -> np.ndarray:
    """Least-squares ring-harmonic coefficients (2M+1, h, w) of arbitrary ring weights ``W`` (C order).

    Each pixel's weights on its ring are projected onto the angular basis of
    :class:`~ace_neuro.stages.cnmfe.background.RingFilter` (the same ring pixels as CaImAn's:
    ``radius^2 < d^2 <= (radius + 1)^2``); weights off the ring are ignored.
    """
    from ..stages.cnmfe.background import RingFilter

    h, w = grid
    P = h * w
    f = RingFilter((h, w), radius, n_harmonics)
    lookup = {(int(dy), int(dx)): j for j, (dy, dx) in enumerate(zip(f.dy, f.dx))}
    coo = W.tocoo()
    dy = coo.col // w - coo.row // w
    dx = coo.col % w - coo.row % w
    j = np.array([lookup.get((int(a), int(b)), -1) for a, b in zip(dy, dx)], np.int64)
    keep = j >= 0
    n_ring = len(f.dy)
    vals = np.zeros((P, n_ring))
    vals[coo.row[keep], j[keep]] = coo.data[keep]
    yy, xx = np.divmod(np.arange(P), w)
    inside = np.empty((P, n_ring), bool)
    for k in range(n_ring):
        ty, tx = yy + f.dy[k], xx + f.dx[k]
        inside[:, k] = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
    phi = f.phi  # (nb, n_ring)
    G = np.einsum("mj,pj,nj->pmn", phi, inside.astype(np.float64), phi)
    r = np.einsum("mj,pj->pm", phi, vals * inside)
    nb = phi.shape[0]
    scale = np.einsum("pii->p", G) / nb
    G = G + (ridge * scale + 1e-30)[:, None, None] * np.eye(nb)[None]
    beta = np.linalg.solve(G, r[:, :, None])[:, :, 0]
    return beta.T.reshape(nb, h, w).astype(np.float32)


def motion_arrays_from_caiman(out: dict, n_frames: int) -> dict[str, np.ndarray]:
    """Rigid and patch shifts in this platform's convention from the runner's arrays.

    CaImAn reports corrections (the shift applied to a frame); this platform stores the
    content's displacement, so every shift changes sign. With ``shifts_rig_els`` (piecewise-rigid)
    the rigid shifts are those of the piecewise pass, else of the rigid pass. Patch shifts come as ``x`` (axis 0,
    rows) and ``y`` (axis 1) per patch in C order of CaImAn's grid; returned as
    ``patch_shifts`` (T, ny, nx, 2) ``(dy, dx)`` and ``patch_centers`` (ny, nx, 2).
    """
    # piecewise-rigid: the rigid shift of that pass, which the patch shifts deviate from
    rigid = -np.asarray(out.get("shifts_rig_els", out["shifts_rig"]), np.float64).reshape(n_frames, 2)
    arrays = {"rigid_shifts": rigid.astype(np.float32)}
    if "x_shifts_els" in out:
        cy = np.asarray(out["patch_centers_y"], np.float64)
        cx = np.asarray(out["patch_centers_x"], np.float64)
        ny, nx = len(cy), len(cx)
        x = np.asarray(out["x_shifts_els"], np.float64).reshape(n_frames, -1)
        y = np.asarray(out["y_shifts_els"], np.float64).reshape(n_frames, -1)
        if x.shape[1] != ny * nx:
            raise CaimanRunError(f"CaImAn reported {x.shape[1]} patch shifts per frame for a {ny} x {nx} patch "
                                 "grid; the motion results cannot be converted")
        patches = -np.stack([x, y], axis=-1).reshape(n_frames, ny, nx, 2)
        yy, xx = np.meshgrid(cy, cx, indexing="ij")
        arrays["patch_shifts"] = patches.astype(np.float32)
        arrays["patch_centers"] = np.stack([yy, xx], axis=-1).astype(np.float32)
    return arrays


def cnmfe_arrays_from_caiman(out: dict, dims: tuple[int, int], ssub_B: int) -> dict:
    """The runner's CNMF-E arrays converted to this platform's conventions.

    Footprints get pixel index ``y * W + x`` and are scaled to a peak of 1 (CaImAn
    normalises them to unit norm); C, S, YrA, the noise and the baseline are scaled by the
    same factor, so ``A C`` is unchanged. b0 becomes an (H, W) image, W the C-order ring
    weights on the ``ssub_B`` grid.
    """
    h, w = dims
    shape = tuple(int(v) for v in out["A_shape"])
    K = shape[1]
    grid = ((h - 1) // ssub_B + 1, (w - 1) // ssub_B + 1)
    res: dict = {}
    if K:
        A = footprints_from_caiman(out["A_data"], out["A_indices"], out["A_indptr"], shape, dims)
        peak = np.asarray(A.max(axis=0).todense()).ravel().astype(np.float64)
        peak = np.where(peak > 0, peak, 1.0)
        A = (A @ sp.diags((1.0 / peak).astype(np.float32))).tocsc().astype(np.float32)
        A.sort_indices()
        m = peak[:, None]
        res.update(A=A, C=(np.asarray(out["C"], np.float64) * m).astype(np.float32),
                   S=(np.asarray(out["S"], np.float64) * m).astype(np.float32),
                   YrA=(np.asarray(out["YrA"], np.float64) * m).astype(np.float32),
                   sn=np.asarray(out["neurons_sn"], np.float64) * peak,
                   baseline=np.asarray(out["bl"], np.float64) * peak,
                   g=np.asarray(out["g"], np.float64).reshape(K, 2))
    else:
        T = int(out["n_frames"])
        res.update(A=sp.csc_matrix((h * w, 0), dtype=np.float32), C=np.zeros((0, T), np.float32),
                   S=np.zeros((0, T), np.float32), YrA=np.zeros((0, T), np.float32), sn=np.zeros(0),
                   baseline=np.zeros(0), g=np.zeros((0, 2)))
    if "b0" in out:
        res["b0"] = np.asarray(out["b0"], np.float32).reshape((h, w), order="F")
    else:
        res["b0"] = np.zeros((h, w), np.float32)
    if "W_shape" in out:
        res["W"] = ring_weights_from_caiman(out["W_data"], out["W_indices"], out["W_indptr"], out["W_shape"], grid)
    else:
        res["W"] = sp.csr_matrix((grid[0] * grid[1], grid[0] * grid[1]), dtype=np.float32)
    res["grid"] = grid
    return res


def component_peaks(A: sp.csc_matrix, dims: tuple[int, int]) -> np.ndarray:
    """(K, 2) pixel ``(y, x)`` of each footprint's maximum."""
    A = A.tocsc()
    out = np.zeros((A.shape[1], 2))
    for k in range(A.shape[1]):
        lo, hi = A.indptr[k], A.indptr[k + 1]
        if hi > lo:
            p = A.indices[lo + int(np.argmax(A.data[lo:hi]))]
            out[k] = divmod(int(p), dims[1])
    return out


# --------------------------------------------------------------------------- the engine
class CaimanEngine:
    """CaImAn behind the engine interface (see :func:`ace_neuro.engines.get_engine`)."""

    name = "caiman"

    def __init__(self, python: str, version: str):
        self.python = python
        self.version = version

    # ------------------------------------------------------------------ motion
    def correct_motion(self, frames, params, *, times=None, frame_rate: float | None = None,
                       block_frames: int | None = None, n_workers: int | None = None,
                       progress: Callable[[str, float], None] | None = None):
        """CaImAn's ``MotionCorrect`` (rigid, or piecewise-rigid after rigid) with the CSV's values.

        Same inputs and output as the native :func:`~ace_neuro.stages.motion.correct_motion`:
        a :class:`~ace_neuro.movie.MovieStream` of float32 blocks whose ``extras()`` are the
        native engine's arrays. Shifts and template are CaImAn's; ``corr_before``,
        ``corr_after``, ``residual_shift`` and the mean images are measured here with the native
        engine's definitions, against this platform's high-pass of the mean of up to 300
        corrected frames.
        """
        from ..movie import Movie, MovieStream, subsample_indices
        from ..stages.motion.aligner import Aligner
        from ..stages.motion.filters import HighPass
        from ..stages.motion.parallel import default_workers, submit_chunks
        from ..stages.motion.pipeline import _timing
        from ..stages.motion.suggest import resolve_highpass
        from ..stages.motion.validation import MotionParameterError, check_frames, check_motion_params

        if isinstance(frames, Movie):
            times = frames.times if times is None else times
            frame_rate = frames.frame_rate if frame_rate is None else frame_rate
            frames = frames.frames
        t, h, w = check_frames(frames)
        check_motion_params(params, (h, w))
        if params.pw_rigid and not params.shifts_opencv and params.gSig_filt is not None:
            raise MotionParameterError(
                "engine = caiman: CaImAn cannot warp piecewise-rigid shifts without OpenCV when gSig_filt is set "
                "(shifts_opencv = FALSE); set shifts_opencv = TRUE, gSig_filt = FALSE or pw_rigid = FALSE",
                parameter="shifts_opencv")
        times, frame_rate = _timing(t, times, frame_rate)
        bf = int(block_frames or _block_frames(h, w))
        params, notes, advice = resolve_highpass(frames, params, block_frames=min(bf, 256))
        check_motion_params(params, (h, w))
        workdir = _workdir("ace-caiman-motion-")
        try:
            movie_path, lo = write_memmap(frames, workdir, "movie", "F", bf)
            job = {"task": "motion", "movie": str(movie_path), "output": str(workdir / "motion.npz"),
                   "params": dataclasses.asdict(params), "frame_rate": frame_rate,
                   # with gSig_filt CaImAn adds -min_mov to the warped unfiltered frames it saves: 0 keeps
                   # the movie's own values (without gSig_filt the offset cancels)
                   "min_mov": 0.0 if params.gSig_filt is not None else lo,
                   "n_processes": _processes()}
            report = None if progress is None else (lambda f, s: progress(s, f))
            out = run_job(self.python, job, workdir, on_progress=report)
            arrays = motion_arrays_from_caiman(out, t)
            corrected = out["facts"]["corrected_movie"]
            cdims, ct, corder = runner.parse_memmap_name(corrected)
            if cdims != (h, w) or ct != t or corder != "F":
                raise CaimanRunError(f"CaImAn's corrected movie {corrected} is not {t} frames of {h} x {w} (F order)")
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        template = np.asarray(out["template"], np.float32)
        if params.gSig_filt is None:
            template = template - np.float32(np.nanmean(template))
        template = np.where(np.isfinite(template), template, 0).astype(np.float32)
        # the quality figures are measured as the native engine measures them: against this
        # platform's high-pass of the corrected movie's mean (CaImAn's filter differs a little)
        sample = subsample_indices(t, MEASURE_TEMPLATE_FRAMES)
        mean = np.mean([_finite(read_fortran_frames(corrected, (h, w), int(i), int(i) + 1)[0]) for i in sample],
                       axis=0).astype(np.float32)
        reference = HighPass((h, w), params.gSig_filt)(mean, np.empty((h, w), np.float32))
        probe = Aligner(reference, dataclasses.replace(params, pw_rigid=False), pw_rigid=False)
        workers = default_workers(n_workers)
        acc = {"corr_before": np.zeros(t, np.float32), "corr_after": np.zeros(t, np.float32),
               "residual_shift": np.zeros(t, np.float32), "done": 0,
               "sum_before": [np.zeros((h, w)) for _ in range(workers)],
               "sum_after": [np.zeros((h, w)) for _ in range(workers)]}

        def measure(raw: np.ndarray, fixed: np.ndarray, start: int, a: int, b: int, k: int) -> None:
            hp = np.empty((h, w), np.float32)
            for i in range(a, b):
                before, after = _finite(raw[i]), _finite(fixed[i])
                acc["corr_before"][start + i] = probe.correlation(probe.highpass(before, hp))
                spectrum = probe.highpass.spectrum(after)
                acc["corr_after"][start + i] = probe.correlation(probe.highpass.from_spectrum(spectrum, hp))
                acc["residual_shift"][start + i] = float(np.hypot(*probe.rigid.shift(spectrum)))
                acc["sum_before"][k] += before
                acc["sum_after"][k] += after

        def blocks() -> Iterator[np.ndarray]:
            try:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="caiman-motion") as pool:
                    for s in range(0, t, bf):
                        e = min(s + bf, t)
                        raw = np.asarray(frames[s:e])
                        fixed = read_fortran_frames(corrected, (h, w), s, e)
                        for fut in submit_chunks(pool, e - s, workers,
                                                 lambda a, b, k: measure(raw, fixed, s, a, b, k)):
                            fut.result()
                        acc["done"] = e
                        yield np.ascontiguousarray(fixed, np.float32)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)

        def extras() -> dict[str, np.ndarray]:
            from ..stages.motion import MotionCorrectionError

            if acc["done"] < t:
                raise MotionCorrectionError(
                    f"motion results requested after {acc['done']} of {t} frames: consume all blocks first")
            return {"template": template, **arrays, "corr_before": acc["corr_before"],
                    "corr_after": acc["corr_after"], "residual_shift": acc["residual_shift"],
                    "mean_before": (sum(acc["sum_before"]) / t).astype(np.float32),
                    "mean_after": (sum(acc["sum_after"]) / t).astype(np.float32)}

        notes = list(notes) + [f"motion corrected by CaImAn {self.version} ({self.python})"]
        attrs = {"engine": self.name, "engine_version": self.version, "engine_interpreter": self.python,
                 "motion_params": dataclasses.asdict(params), "caiman_params": out["facts"]["caiman_params"],
                 "notes": notes, "parameter_advice": advice,
                 "template": "highpass" if params.gSig_filt is not None else "mean_removed"}
        return MovieStream(shape=(t, h, w), dtype=np.dtype(np.float32), blocks=blocks(), times=times,
                           frame_rate=frame_rate, attrs=attrs, extras=extras)

    # ------------------------------------------------------------------ CNMF-E
    def run_cnmfe(self, frames, params, *, frame_rate: float, block_frames: int | None = None,
                  progress: Callable[[str, float], None] | None = None):
        """CaImAn's CNMF-E (``corr_pnr`` initialisation, ring background) with the CSV's values.

        Same inputs and output as the native :func:`~ace_neuro.stages.cnmfe.run_cnmfe`. The
        correlation and PNR images (and, with ``use_suggested``, the suggested gSig, gSiz,
        min_corr and min_pnr) are this platform's, from a 1,000-frame sample.
        """
        from ..stages.cnmfe import CnmfeResult, advise_parameters, check_cnmfe_params, suggest_parameters
        from ..stages.cnmfe import cnmfe_summary_images
        from ..stages.cnmfe.background import N_HARMONICS
        from ..stages.cnmfe.stream import validate_frame_rate, validate_frames

        T, H, W = validate_frames(frames)
        dims = (H, W)
        frame_rate = validate_frame_rate(frame_rate)
        check_cnmfe_params(params, dims)

        def report(step: str, fraction: float) -> None:
            if progress is not None:
                progress(step, float(fraction))

        report("summary images", 0.0)
        notes: list[str] = []
        gSig, gSiz = tuple(params.gSig), tuple(params.gSiz)
        min_corr, min_pnr = float(params.min_corr), float(params.min_pnr)
        summary = cnmfe_summary_images(frames, gSig, gSiz=gSiz, center_psf=params.center_psf,
                                       border_pix=params.border_pix)
        sug = suggest_parameters(summary)
        advice_msgs: list[str] = []
        if params.use_suggested:
            new_gSig = tuple(int(g) for g in sug.gSig)
            if new_gSig != gSig:
                summary = cnmfe_summary_images(frames, new_gSig, gSiz=tuple(sug.gSiz), center_psf=params.center_psf,
                                               border_pix=params.border_pix)
                thresholds = suggest_parameters(summary)
            else:
                thresholds = sug
            new_gSiz = tuple(4 * g + 1 for g in new_gSig)
            notes.append(f"use_suggested: gSig {gSig} -> {new_gSig}, gSiz {gSiz} -> {new_gSiz}, min_corr {min_corr} "
                         f"-> {thresholds.min_corr}, min_pnr {min_pnr} -> {thresholds.min_pnr}")
            notes.extend(sug.notes[:1])
            gSig, gSiz = new_gSig, new_gSiz
            min_corr, min_pnr = float(thresholds.min_corr), float(thresholds.min_pnr)
        else:
            advice_msgs = [a.message for a in advise_parameters(gSig=params.gSig, min_corr=params.min_corr,
                                                                 min_pnr=params.min_pnr, suggestion=sug)]
            for message in advice_msgs:
                log.warning(message)
        used = {**dataclasses.asdict(params), "gSig": list(gSig), "gSiz": list(gSiz), "min_corr": min_corr,
                "min_pnr": min_pnr}
        report("writing the movie for CaImAn", 0.05)
        workdir = _workdir("ace-caiman-cnmfe-")
        try:
            movie_path, _ = write_memmap(frames, workdir, "movie", "C", block_frames)
            job = {"task": "cnmfe", "movie": str(movie_path), "output": str(workdir / "cnmfe.npz"),
                   "params": used, "frame_rate": frame_rate, "n_processes": _processes()}
            out = run_job(self.python, job, workdir,
                          on_progress=lambda f, s: report(f"CaImAn: {s}", 0.1 + 0.85 * f))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        conv = cnmfe_arrays_from_caiman(out, dims, int(params.ssub_B))
        radius = int(out["facts"]["ring_radius"])
        coef = ring_coefficients(conv["W"], conv["grid"], radius, N_HARMONICS)
        notes.append(f"CNMF-E by CaImAn {self.version} ({self.python}); correlation/PNR images and seeds' "
                     "positions are this platform's (the seeds are the components' peaks)")
        used.update(parameter_advice=advice_msgs, engine="caiman", engine_version=self.version,
                    engine_interpreter=self.python, ring_radius_px=radius * int(params.ssub_B), notes=notes,
                    caiman_params=out["facts"]["caiman_params"])
        report("done", 1.0)
        return CnmfeResult(A=conv["A"], C=conv["C"], S=conv["S"], YrA=conv["YrA"], sn=conv["sn"],
                           baseline=conv["baseline"], g=conv["g"], b0=conv["b0"], W=conv["W"].astype(np.float32),
                           ring_coef=coef, ring_radius=radius, ssub_B=int(params.ssub_B), n_harmonics=N_HARMONICS,
                           corr=np.asarray(summary.corr, np.float32), pnr=np.asarray(summary.pnr, np.float32),
                           seeds=component_peaks(conv["A"], dims), dims=dims, frame_rate=frame_rate, params=used)


def _finite(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame, np.float32)
    if not np.isfinite(f).all():
        good = np.isfinite(f)
        f = np.where(good, f, np.float32(f[good].mean()) if good.any() else np.float32(0))
    return f
