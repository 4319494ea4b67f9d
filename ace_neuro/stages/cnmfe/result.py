"""The CNMF-E result and its lossless conversion to plain arrays (for zarr, no pickle)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from .background import RingModel
from .errors import CnmfeInputError

__all__ = ["CnmfeResult", "RESULT_FORMAT_VERSION"]

RESULT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CnmfeResult:
    """Source extraction result for one recording: ``Y ~ A C + B``.

    Attributes
    ----------
    A : scipy.sparse.csc_matrix, shape (H*W, K), float32
        Footprints, pixel index ``y * W + x`` (C order of (H, W)); each column's max is 1.
    C : ndarray, shape (K, T), float32
        Denoised calcium traces (movie units at the footprint's peak, baseline removed).
    S : ndarray, shape (K, T), float32
        Deconvolved spikes (same units as C).
    YrA : ndarray, shape (K, T), float32
        Residual traces: ``C + YrA`` is each component's raw (un-denoised) trace.
    sn : ndarray, shape (K,)
        Noise standard deviation of each raw trace.
    baseline : ndarray, shape (K,)
        Baseline removed from each raw trace before deconvolution.
    g : ndarray, shape (K, 2)
        AR coefficients of each trace (``g2 = 0`` for AR(1)).
    b0 : ndarray, shape (H, W), float32
        Constant background.
    W : scipy.sparse.csr_matrix, shape (h*w, h*w), float32
        Ring weights on the ``ssub_B`` grid (``h = ceil(H / ssub_B)``).
    ring_coef : ndarray, shape (2M+1, h, w), float32
        Ring-harmonic coefficients (W in compact form; used to compute B fast).
    ring_radius, ssub_B, n_harmonics : int
        Ring geometry.
    corr, pnr : ndarray, shape (H, W), float32
        Correlation and peak-to-noise-ratio images of the filtered movie.
    seeds : ndarray, shape (N, 2)
        Seed pixels (y, x) examined by the initialisation.
    dims : (H, W)
    frame_rate : float
        Frames per second.
    params : dict
        Parameters actually used (after suggestions), plus ``notes``.
    """

    A: sp.csc_matrix
    C: np.ndarray
    S: np.ndarray
    YrA: np.ndarray
    sn: np.ndarray
    baseline: np.ndarray
    g: np.ndarray
    b0: np.ndarray
    W: sp.csr_matrix
    ring_coef: np.ndarray
    ring_radius: int
    ssub_B: int
    n_harmonics: int
    corr: np.ndarray
    pnr: np.ndarray
    seeds: np.ndarray
    dims: tuple[int, int]
    frame_rate: float
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def no_components(cls, dims: tuple[int, int], n_frames: int, frame_rate: float,
                      params: Mapping[str, Any]) -> "CnmfeResult":
        """A result with no components (CNMF-E switched off): every table below it is empty, not missing."""
        H, W = (int(v) for v in dims)
        T = int(n_frames)
        empty = np.zeros((0, T), np.float32)
        return cls(A=sp.csc_matrix((H * W, 0), dtype=np.float32), C=empty, S=empty.copy(), YrA=empty.copy(),
                   sn=np.zeros(0), baseline=np.zeros(0), g=np.zeros((0, 2)), b0=np.zeros((H, W), np.float32),
                   W=sp.csr_matrix((1, 1), dtype=np.float32), ring_coef=np.zeros((1, 1, 1), np.float32),
                   ring_radius=0, ssub_B=1, n_harmonics=0, corr=np.zeros((H, W), np.float32),
                   pnr=np.zeros((H, W), np.float32), seeds=np.zeros((0, 2)), dims=(H, W),
                   frame_rate=float(frame_rate), params=dict(params))

    @property
    def n_components(self) -> int:
        return int(self.A.shape[1])

    @property
    def n_frames(self) -> int:
        return int(self.C.shape[1])

    def footprint(self, k: int) -> np.ndarray:
        """Footprint ``k`` as an (H, W) image."""
        return np.asarray(self.A[:, k].todense()).reshape(self.dims)

    def ring_model(self) -> RingModel:
        """The background model (b0 and ring weights) as a :class:`RingModel`."""
        return RingModel(dims=tuple(self.dims), ssub_B=self.ssub_B, radius=self.ring_radius,
                         n_harmonics=self.n_harmonics, coef=self.ring_coef, b0=self.b0)

    def background(self, frames_block: np.ndarray, start: int) -> np.ndarray:
        """Background ``B`` of frames ``[start, start + len(frames_block))``, shape (B, H, W)."""
        from .update import ac_block

        y = np.asarray(frames_block, dtype=np.float32)
        ac = ac_block(self.A, self.C[:, start:start + y.shape[0]], self.dims)
        return self.ring_model().background(y, ac)

    # ---------------------------------------------------------------- serialisation
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (sparse matrices as data/indices/indptr/shape)."""
        out: dict[str, np.ndarray] = {"format_version": np.array(RESULT_FORMAT_VERSION)}
        for name in ("A", "W"):
            m = getattr(self, name)
            out[f"{name}_data"] = np.asarray(m.data, np.float32)
            out[f"{name}_indices"] = np.asarray(m.indices, np.int64)
            out[f"{name}_indptr"] = np.asarray(m.indptr, np.int64)
            out[f"{name}_shape"] = np.asarray(m.shape, np.int64)
        for name in ("C", "S", "YrA", "sn", "baseline", "g", "b0", "ring_coef", "corr", "pnr", "seeds"):
            out[name] = np.asarray(getattr(self, name))
        out["ring_geometry"] = np.array([self.ring_radius, self.ssub_B, self.n_harmonics], np.int64)
        out["dims"] = np.asarray(self.dims, np.int64)
        out["frame_rate"] = np.array(float(self.frame_rate))
        out["params_json"] = np.frombuffer(json.dumps(dict(self.params), default=_json_default).encode(), np.uint8)
        return out

    @classmethod
    def from_arrays(cls, d: Mapping[str, np.ndarray]) -> "CnmfeResult":
        """Inverse of :meth:`to_arrays` (accepts zarr arrays or numpy arrays)."""
        def get(name):
            if name not in d:
                raise CnmfeInputError(f"CNMF-E result arrays lack '{name}'; was it written by to_arrays()?")
            return np.asarray(d[name])

        version = int(get("format_version"))
        if version != RESULT_FORMAT_VERSION:
            raise CnmfeInputError(f"CNMF-E result format {version} is not readable by this version "
                                  f"(expects {RESULT_FORMAT_VERSION}); re-run CNMF-E")
        A = sp.csc_matrix((get("A_data"), get("A_indices"), get("A_indptr")), shape=tuple(get("A_shape")))
        W = sp.csr_matrix((get("W_data"), get("W_indices"), get("W_indptr")), shape=tuple(get("W_shape")))
        radius, ssub_B, nh = (int(v) for v in get("ring_geometry"))
        params = json.loads(bytes(get("params_json").astype(np.uint8)).decode())
        return cls(A=A, C=get("C"), S=get("S"), YrA=get("YrA"), sn=get("sn"), baseline=get("baseline"),
                   g=get("g"), b0=get("b0"), W=W, ring_coef=get("ring_coef"), ring_radius=radius,
                   ssub_B=ssub_B, n_harmonics=nh, corr=get("corr"), pnr=get("pnr"), seeds=get("seeds"),
                   dims=tuple(int(v) for v in get("dims")), frame_rate=float(get("frame_rate")),
                   params=params)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (tuple, set, np.ndarray)):
        return list(np.asarray(o).tolist()) if isinstance(o, np.ndarray) else list(o)
    raise TypeError(f"cannot store {type(o).__name__} in CNMF-E params")

