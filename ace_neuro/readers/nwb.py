"""NWB files as raw recordings: a session folder holding one ``.nwb`` file with an imaging series.

Layout::

    <session>/<anything>.nwb    an NWB 2 file (HDF5) with, in acquisition (else processing), a
                                OnePhotonSeries, or a 3-D TwoPhotonSeries or ImageSeries:
                                data (frames, rows, columns), timestamps or starting_time + rate

The series is found from the file's own type attributes with h5py (no extension needs to be
installed to read it). Preference: OnePhotonSeries, then TwoPhotonSeries, then ImageSeries; in
acquisition before processing; then by name. Frames are read from the HDF5 dataset block by
block, so the recording is never held in memory. The device's attributes (a Miniscope's
``deviceType``, ``gain``, ``led0``, ...), the imaging plane's and the file's session start time
become the recording's metadata.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from .base import MiniscopeReader, ReaderError, RecordingInfo, VideoChunk, detect_dropped, prefetch

log = logging.getLogger(__name__)

SERIES_TYPES = ("OnePhotonSeries", "TwoPhotonSeries", "ImageSeries")


class NwbFileError(ReaderError):
    """An NWB file that cannot be read as a recording; the message names the file."""

    default_fix = ("check that the session folder holds one complete NWB file (HDF5) with an imaging series "
                   "(OnePhotonSeries, TwoPhotonSeries or ImageSeries) in acquisition; re-copy a damaged file.")


def _nwb_files(session_dir: Path) -> list[Path]:
    """The folder's own ``.nwb`` files (hidden temporaries of a writer left out)."""
    return sorted(p for p in session_dir.glob("*.nwb") if p.is_file() and not p.name.startswith("."))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _attrs(node) -> dict:
    out = {}
    for key, value in node.attrs.items():
        if key in ("namespace", "object_id"):
            continue
        if isinstance(value, (bytes, str)):
            out[key] = _text(value)
        elif isinstance(value, np.generic):
            out[key] = value.item()
        elif isinstance(value, np.ndarray) and value.size <= 16 and value.dtype.kind in "iuf":
            out[key] = value.tolist()
    return out


def _datasets(group) -> dict:
    """Small scalar/text datasets of a group (an NWB device or plane keeps some fields there)."""
    import h5py

    out = {}
    for key, node in group.items():
        if isinstance(node, h5py.Dataset) and node.size <= 16:
            value = node[()]
            out[key] = _text(value) if isinstance(value, (bytes, str)) else np.asarray(value).tolist()
    return out


def _candidates(f) -> list[tuple[int, int, str]]:
    """(type rank, place rank, path) of every imaging series in the file."""
    import h5py

    found = []

    def visit(group, place: int, depth: int):
        for name, node in group.items():
            if not isinstance(node, h5py.Group):
                continue
            kind = _text(node.attrs.get("neurodata_type", ""))
            if kind in SERIES_TYPES and "data" in node:
                found.append((SERIES_TYPES.index(kind), place, node.name))
            elif depth > 0:
                visit(node, place, depth - 1)

    if "acquisition" in f:
        visit(f["acquisition"], 0, 0)
    if "processing" in f:
        visit(f["processing"], 1, 1)
    return sorted(found)


class NwbReader(MiniscopeReader):
    format_name = "nwb"
    looks_for = "one .nwb file (NWB 2, HDF5) with a OnePhotonSeries (or a 3-D TwoPhotonSeries / ImageSeries)"

    @classmethod
    def recognises(cls, session_dir: Path) -> bool:
        return bool(_nwb_files(session_dir))

    def __init__(self, session_dir, *, filenames=None):
        super().__init__(session_dir, filenames=filenames)
        self._notes: list[str] = []  # what choosing the series said, shown as the recording's warnings

    # -- the file and its series ------------------------------------------------------------
    def _file(self) -> Path:
        files = _nwb_files(self.session_dir)
        if not files:
            raise NwbFileError(f"{self.session_dir}: no .nwb file found ({self.looks_for}).")
        if len(files) > 1:
            raise NwbFileError(f"{self.session_dir}: several NWB files {[p.name for p in files]}; each recording "
                               f"needs its own session folder. Move the others out (or point 'calcium imaging "
                               f"directory' at a folder holding one of them).")
        return files[0]

    def _open(self, path: Path):
        import h5py

        try:
            return h5py.File(path, "r")
        except OSError as exc:
            raise NwbFileError(f"{path}: cannot be opened as an NWB (HDF5) file ({exc}). The file is damaged or "
                               f"incomplete, or it is an NWB zarr store (not supported): re-copy it, or convert "
                               f"it to HDF5.", file=path) from None

    def _series(self, f, path: Path):
        found = _candidates(f)
        if not found:
            kinds = sorted({_text(g.attrs.get("neurodata_type", "")) for g in
                            (f["acquisition"].values() if "acquisition" in f else [])} - {""})
            raise NwbFileError(f"{path}: no imaging series ({', '.join(SERIES_TYPES)}) in acquisition or "
                               f"processing (acquisition holds: {kinds or 'nothing'}). Write the movie as a "
                               f"OnePhotonSeries in acquisition.", file=path)
        chosen = f[found[0][2]]
        if len(found) > 1:
            others = [p for _, _, p in found[1:]]
            self._notes.append(f"{path.name}: several imaging series; reading {chosen.name}, not {others}.")
        data = chosen["data"]
        if "external_file" in chosen and data.size <= 1:
            raise NwbFileError(f"{path}: {chosen.name} keeps its frames in external files "
                               f"({[_text(x) for x in chosen['external_file'][:3]]}); put those videos in the "
                               f"session folder in their own format instead, or embed the frames.", file=path)
        if data.ndim != 3:
            raise NwbFileError(f"{path}: {chosen.name}/data has shape {data.shape}; a recording is 3-D (frames, "
                               f"rows, columns). A 4-D (volumetric or colour) series is not supported.", file=path)
        return chosen

    def _times(self, series, n: int, path: Path) -> tuple[np.ndarray, dict]:
        if "timestamps" in series:
            ts = series["timestamps"]
            times = np.asarray(ts[:], dtype=np.float64)
            return times, {"timing": "timestamps"}
        if "starting_time" in series:
            start = series["starting_time"]
            rate = start.attrs.get("rate")
            if rate is None or not float(rate) > 0:
                raise NwbFileError(f"{path}: {series.name}/starting_time has no positive 'rate' attribute "
                                   f"({rate!r}); the frames cannot be timed. Write timestamps or a rate.", file=path)
            return float(start[()]) + np.arange(n) / float(rate), {"timing": "rate", "nominal_frame_rate": float(rate)}
        raise NwbFileError(f"{path}: {series.name} has neither timestamps nor starting_time and rate; the frames "
                           f"cannot be timed.", file=path)

    def _metadata(self, f, series, path: Path) -> dict:
        meta = {"nwb_file": str(path), "series": series.name,
                "neurodata_type": _text(series.attrs.get("neurodata_type", ""))}
        for key in ("session_start_time", "identifier", "session_description"):
            if key in f:
                meta[key] = _text(f[key][()])
        plane = series.get("imaging_plane")
        if plane is not None:
            meta["imaging_plane"] = {**_attrs(plane), **_datasets(plane)}
            device = plane.get("device")
            if device is not None:
                fields = {**_attrs(device), **_datasets(device)}
                meta["device"] = fields
                meta.update({k: v for k, v in fields.items() if k not in ("neurodata_type", "description")})
                meta["deviceType"] = str(fields.get("deviceType") or device.name.rsplit("/", 1)[-1])
        meta.setdefault("deviceType", meta["neurodata_type"])
        return meta

    # -- the base class's hooks ---------------------------------------------------------------------
    def _video_dir_and_files(self) -> tuple[Path, list[Path]]:
        return self.session_dir, [self._file()]

    def _timestamps(self):
        path = self._file()
        with self._open(path) as f:
            series = self._series(f, path)
            times, extra = self._times(series, int(series["data"].shape[0]), path)
            return times, None, {**self._metadata(f, series, path), **extra}

    def _scan(self) -> RecordingInfo:
        self._notes = []
        _, files = self._video_dir_and_files()
        path = self._select(files, self.session_dir)[0]
        with self._open(path) as f:
            series = self._series(f, path)
            data = series["data"]
            n_data, height, width = (int(s) for s in data.shape)
            dtype = str(data.dtype)
            times, extra = self._times(series, n_data, path)
            meta = {**self._metadata(f, series, path), **extra}
        warnings = list(self._notes)
        if len(times) != n_data:
            warnings.append(f"{path}: the series holds {n_data} frames but {len(times)} timestamps; using the first "
                            f"{min(n_data, len(times))} of both.")
        n = min(n_data, len(times))
        if n < 2:
            raise NwbFileError(f"{path}: {meta['series']} holds {n} frame(s) with a time; measuring the frame rate "
                               f"(and any analysis over time) needs at least two.", file=path)
        times = times[:n]
        try:
            dropped, rate = detect_dropped(times)
        except ReaderError as exc:
            raise NwbFileError(f"{path}: {exc}. Check the series' timestamps.", file=path) from None
        if dropped.sum():
            where = np.flatnonzero(dropped)[:5].tolist()
            warnings.append(f"{path}: {int(dropped.sum())} dropped frame(s) detected from gaps in the timestamps, "
                            f"before frame(s) {where}.")
        for w in warnings:
            log.warning(w)
        meta["first_timestamp_s"] = float(times[0])
        return RecordingInfo(
            format=self.format_name, session_dir=self.session_dir, video_dir=self.session_dir,
            chunks=(VideoChunk(path, n, 0),), height=height, width=width, dtype=dtype, n_frames=n,
            frame_rate=float(rate), times=times - times[0], frame_numbers=np.arange(n), dropped_before=dropped,
            device=str(meta.get("deviceType", "")), metadata=meta, warnings=tuple(warnings))

    def iter_blocks(self, block_frames: int = 128, *, background: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_frame_index, frames)`` blocks sliced from the HDF5 dataset, one block in memory."""
        if block_frames < 1:
            raise ValueError(f"block_frames must be >= 1, got {block_frames}")
        info = self.info
        path = info.chunks[0].path
        name = info.metadata["series"]

        def blocks():
            with self._open(path) as f:
                data = f[name]["data"]
                for s in range(0, info.n_frames, block_frames):
                    try:
                        block = np.asarray(data[s:min(s + block_frames, info.n_frames)])
                    except OSError as exc:
                        raise NwbFileError(f"{path}: frames {s}.. of {name} cannot be read ({exc}): the file is "
                                           f"damaged. Re-copy it.", file=path) from None
                    yield s, block

        return prefetch(blocks()) if background else blocks()


__all__ = ["NwbFileError", "NwbReader", "SERIES_TYPES"]
