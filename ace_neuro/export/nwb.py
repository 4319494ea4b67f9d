"""One NWB file per experiment line: the lab's metadata, the segmentation, traces, events, shifts, provenance.

Layout of the file (pynwb names)::

    general/subject, devices/Miniscope (ndx-miniscope), ImagingPlane (the raw sensor frame)
    intervals/dropped_frames            gaps the rig left in the frame times (only when frames were dropped)
    processing/ophys/
        ImageSegmentation/PlaneSegmentation   every component, accepted and rejected: image_mask on the
                                              raw frame, accepted, reason, snr, r_value, centroid, area
        Fluorescence/denoised, raw, deconvolved   C, C + YrA and S (frames x components)
        calcium_events                        one row per event, ``roi`` pointing into the segmentation
        summary_images                        raw mean / max projections (when given)
        rigid_shifts, patch_shifts, patch_centers   motion shifts (when motion was corrected)
        motion_corrected                      the movie (OnePhotonSeries), only when asked for
    processing/provenance/analysis_parameters   every parameter used, per stage, with each stage's hash

The file is written to a hidden temporary beside its destination and renamed into place once
complete, so a killed export leaves no file that looks whole.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .. import __version__
from ..params import StageParams, declarations, params_hash
from ..stages.crop import CropBox
from ..storage import StorageError, atomic_path
from .session import SessionInfo

log = logging.getLogger(__name__)

UNIT = "a.u."  # traces and movie in the movie's own units (camera counts, or dF/F when computed)
DEFAULT_CHUNK_FRAMES = 64


class NwbInputError(StorageError):
    """The stored results handed to the NWB writer do not belong together (different frame counts, ids)."""

    default_fix = ("materialise the line's results again (everything upstream of the NWB file) so they come from "
                   "one run, then export again.")


@dataclass(frozen=True)
class NwbExport:
    """What :func:`write_nwb` wrote.

    Attributes
    ----------
    path : Path
    size_bytes : int
    identifier : str
        The file's NWB identifier (a fresh UUID per export).
    n_components, n_accepted, n_frames, n_events, n_dropped_frames : int
    movie_included : bool
    motion_included : bool
    parameters_hash : str
        Hash over every stage's parameter hash (stored in the file).
    device_type : str
        NWB type of the device: ``Miniscope`` (ndx-miniscope).
    missing_metadata : tuple of str
        What a DANDI upload wants that the lab's files did not say (see :meth:`SessionInfo.missing`).
    """

    path: Path
    size_bytes: int
    identifier: str
    n_components: int
    n_accepted: int
    n_frames: int
    n_events: int
    n_dropped_frames: int
    movie_included: bool
    motion_included: bool
    parameters_hash: str
    device_type: str = "Miniscope"
    missing_metadata: tuple[str, ...] = ()


@dataclass(frozen=True)
class NwbContents:
    """The results of one line that go into its file (the science's own types, no storage details).

    Attributes
    ----------
    cnmfe : CnmfeResult
        Footprints A on the analysed (cropped) field, C, S, YrA, noise.
    components : DataFrame
        One row per component (``component_id`` 0..K-1, ``accepted``, ``reason``, ``snr``, ``r_value``,
        ``centroid_y``, ``centroid_x``, ``area_px``), as :func:`ace_neuro.stages.evaluation.accepted_components`.
    frame_times : DataFrame
        One row per frame: ``time_s``, ``dropped_before`` (the reader's frame table).
    raw_frame_shape : (H, W)
        The sensor frame the recording was made on; image masks are drawn on it.
    crop_box : CropBox
        Where the analysed field lies in the raw frame (the whole frame when not cropped).
    parameters : mapping str -> StageParams
        Every stage's parameters (field name of PipelineParams -> dataclass).
    events : DataFrame, optional
        One row per calcium event (``component_id``, ``frame``, ``time_s``, ...).
    motion : MotionResult, optional
        Rigid (and piecewise-rigid) shifts; None when motion was not corrected.
    movie : FrameArray, optional
        The motion-corrected movie (T, h, w), sliceable along frames; written only when given.
    movie_note : str
        Appended to the movie's description (e.g. that motion correction was off).
    summary_images : mapping str -> (H, W) array, optional
        Projections of the raw movie (``mean``, ``max``).
    notes : mapping str -> str
        Anything else to record (engine and version, ...), shown in the file's notes.
    """

    cnmfe: Any
    components: pd.DataFrame
    frame_times: pd.DataFrame
    raw_frame_shape: tuple[int, int]
    crop_box: CropBox
    parameters: Mapping[str, StageParams]
    events: pd.DataFrame | None = None
    motion: Any = None
    movie: Any = None
    movie_note: str = ""
    summary_images: Mapping[str, np.ndarray] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ checks
def _check(contents: NwbContents) -> np.ndarray:
    """Validate that the pieces belong together; returns the frame times."""
    est = contents.cnmfe
    k, t = int(est.A.shape[1]), int(est.C.shape[1])
    times = np.asarray(contents.frame_times["time_s"], dtype=np.float64)
    if len(times) != t:
        raise NwbInputError(f"the frame table has {len(times)} frames but the CNMF-E traces have {t}: they come from "
                            f"different runs (or a different selection of video files).")
    comps = contents.components
    ids = np.asarray(comps["component_id"], dtype=np.int64) if len(comps) else np.zeros(0, np.int64)
    if len(comps) != k or not np.array_equal(np.sort(ids), np.arange(k)):
        raise NwbInputError(f"the components table lists {len(comps)} components (ids {ids[:5].tolist()}...) but "
                            f"CNMF-E found {k}: the table was made from another CNMF-E run.")
    box, (height, width) = contents.crop_box, contents.raw_frame_shape
    if not (0 <= box.row0 < box.row1 <= height and 0 <= box.col0 < box.col1 <= width):
        raise NwbInputError(f"the crop box {box} does not fit the raw {height} x {width} frame.")
    if tuple(box.shape) != tuple(int(d) for d in est.dims):
        raise NwbInputError(f"the crop box is {box.shape[0]} x {box.shape[1]} px but CNMF-E ran on a "
                            f"{est.dims[0]} x {est.dims[1]} px field: the crop changed after CNMF-E ran.")
    if contents.motion is not None and int(contents.motion.n_frames) != t:
        raise NwbInputError(f"the motion shifts cover {contents.motion.n_frames} frames, the traces {t}.")
    if contents.movie is not None:
        shape = tuple(int(s) for s in contents.movie.shape)
        if shape != (t, *tuple(int(d) for d in est.dims)):
            raise NwbInputError(f"the movie is {shape} but the traces are {t} frames of {tuple(est.dims)} px.")
    ev = contents.events
    if ev is not None and len(ev):
        unknown = sorted(set(np.asarray(ev["component_id"], dtype=np.int64).tolist()) - set(range(k)))
        if unknown:
            raise NwbInputError(f"events name components {unknown[:5]} that CNMF-E did not find.")
        frames = np.asarray(ev["frame"], dtype=np.int64)
        if frames.min() < 0 or frames.max() >= t:
            raise NwbInputError(f"events lie at frames outside 0..{t - 1}.")
    return times


def combined_parameters_hash(parameters: Mapping[str, StageParams]) -> str:
    """One hash over every stage's parameter hash (order-independent)."""
    text = ";".join(f"{name}={params_hash(p)}" for name, p in sorted(parameters.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ pieces
def _timing(times: np.ndarray) -> dict:
    """``starting_time`` and ``rate`` for evenly spaced frames (what NWB prefers), else the timestamps."""
    if len(times) > 2:
        steps = np.unique(np.round(np.diff(times), 9))
        if len(steps) == 1 and steps[0] > 0:
            return {"starting_time": float(times[0]), "rate": float(1.0 / steps[0])}
    return {"timestamps": times}


def _linked_timing(first, timing: dict) -> dict:
    """The timing of a series that shares the first one's frames: a link to its timestamps, or the same rate."""
    if first is None or "timestamps" not in timing:
        return dict(timing)
    return {"timestamps": first}


def _nwb_file(session: SessionInfo, contents: NwbContents, digest: str):
    from pynwb import NWBFile
    from pynwb.file import Subject

    s = session.subject
    subject = Subject(subject_id=s.subject_id, species=s.species, sex=s.sex, age=s.age,
                      date_of_birth=s.date_of_birth, weight=s.weight, strain=s.strain, genotype=s.genotype,
                      description=f"subject of experiments.csv line {session.line_num}")
    notes = {"experiments.csv row": dict(session.experiment_row), "session_start_time": session.start_time_source,
             "analysed field (raw frame rows, columns)": [contents.crop_box.row0, contents.crop_box.row1,
                                                           contents.crop_box.col0, contents.crop_box.col1],
             **{k: str(v) for k, v in contents.notes.items()}}
    missing = session.missing()
    if missing:
        notes["not in the lab's files"] = missing
    collection = {"format": session.recording_format, "device_type": session.device_type,
                  "frame_rate_hz_from_timestamps": round(session.frame_rate, 6),
                  "device metaData.json": dict(session.device_metadata)}
    if session.session_metadata:
        collection["session metaData.json"] = dict(session.session_metadata)
    return NWBFile(
        session_description=session.session_description, identifier=str(uuid.uuid4()),
        session_start_time=session.session_start_time, session_id=str(session.line_num),
        experimenter=list(session.experimenter) or None, experiment_description=session.experiment_description,
        keywords=["calcium imaging", "miniscope", "1-photon", "CNMF-E"], subject=subject,
        notes=json.dumps(notes, indent=1, default=str), data_collection=json.dumps(collection, indent=1, default=str),
        source_script=f"ace-neuro {__version__} (ace_neuro.export.nwb.write_nwb); parameters hash {digest}",
        source_script_file_name="ace_neuro/export/nwb.py",
    )


def _as_int(value) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _device(nwb, session: SessionInfo):
    from ndx_miniscope import Miniscope

    meta = dict(session.device_metadata)
    roi = meta.get("ROI")
    kwargs: dict[str, Any] = {"deviceType": str(meta.get("deviceType") or session.device_type)}
    for key in ("compression", "gain", "frameRate"):
        if meta.get(key) not in (None, ""):
            kwargs[key] = str(meta[key])
    for key in ("framesPerFile", "led0", "excitation", "msCamExposure"):
        value = _as_int(meta.get(key))
        if value is not None:
            kwargs[key] = value
    if isinstance(roi, Mapping) and _as_int(roi.get("height")) and _as_int(roi.get("width")):
        kwargs["ROI"] = [_as_int(roi["height"]), _as_int(roi["width"])]
    settings = json.dumps({k: v for k, v in meta.items() if k not in ("first_timestamp_s",)}, default=str)
    device = Miniscope(name="Miniscope", description=f"UCLA Miniscope ({session.device_type}), recorded as "
                                                     f"{session.recording_format}; the rig's settings: {settings}",
                       **kwargs)
    nwb.add_device(device)
    return device


def _imaging_plane(nwb, device, session: SessionInfo, contents: NwbContents):
    from pynwb.ophys import OpticalChannel

    im, (height, width), box = session.imaging, contents.raw_frame_shape, contents.crop_box
    channel = OpticalChannel(name="OpticalChannel", emission_lambda=float(im.emission_lambda_nm),
                             description="the Miniscope's green emission filter (GCaMP-type indicators)")
    return nwb.create_imaging_plane(
        name="ImagingPlane", optical_channel=channel, device=device,
        description=(f"the Miniscope sensor's raw {height} x {width} px frame (rows from the top); image masks are "
                     f"drawn on it. The analysed field is rows {box.row0}..{box.row1 - 1}, columns "
                     f"{box.col0}..{box.col1 - 1}."),
        excitation_lambda=float(im.excitation_lambda_nm), indicator=im.indicator, location=im.location,
        imaging_rate=float(session.frame_rate))


def _compressed(data, **kwargs):
    from hdmf.backends.hdf5 import H5DataIO

    return H5DataIO(data=data, compression="gzip", **kwargs)


def _segmentation(ophys, plane, contents: NwbContents):
    from hdmf.common import ElementIdentifiers, VectorData
    from pynwb.ophys import ImageSegmentation, PlaneSegmentation

    from .chunks import FootprintMasks

    est, box = contents.cnmfe, contents.crop_box
    comps = contents.components.sort_values("component_id").reset_index(drop=True)
    k = int(est.A.shape[1])
    sn = np.asarray(est.sn, dtype=np.float64) if len(np.asarray(est.sn)) == k else np.full(k, np.nan)
    masks = FootprintMasks(est.A, tuple(est.dims), contents.raw_frame_shape, (box.row0, box.col0))
    columns = [
        VectorData(name="image_mask", data=_compressed(masks),
                   description="footprint of each component (peak 1) on the raw frame, zero outside the analysed "
                               "field"),
        VectorData(name="accepted", data=comps["accepted"].to_numpy(dtype=bool),
                   description="True: accepted (SNR, r-value and manual curation); False: rejected"),
        VectorData(name="reason", data=comps["reason"].fillna("").astype(str).tolist(),
                   description="why the component was accepted or rejected"),
        VectorData(name="snr", data=comps["snr"].to_numpy(dtype=np.float64),
                   description="signal-to-noise ratio of the trace (accepted when >= min_SNR)"),
        VectorData(name="r_value", data=comps["r_value"].to_numpy(dtype=np.float64),
                   description="spatial correlation of footprint and movie (accepted when >= rval_thr)"),
        VectorData(name="centroid_y", data=comps["centroid_y"].to_numpy(dtype=np.float64) + box.row0,
                   description="centroid row on the raw frame, px from the top"),
        VectorData(name="centroid_x", data=comps["centroid_x"].to_numpy(dtype=np.float64) + box.col0,
                   description="centroid column on the raw frame, px from the left"),
        VectorData(name="area_px", data=comps["area_px"].to_numpy(dtype=np.int64),
                   description="pixels of the footprint"),
        VectorData(name="noise_sigma", data=sn, description="noise standard deviation of the raw trace (a.u.)"),
    ]
    seg = PlaneSegmentation(
        name="PlaneSegmentation", imaging_plane=plane, columns=columns,
        id=ElementIdentifiers(name="id", data=comps["component_id"].to_numpy(dtype=np.int64)),
        description=("CNMF-E components, accepted and rejected (column 'accepted'); ids are the component ids of "
                     "the analysis"))
    container = ImageSegmentation(name="ImageSegmentation")
    container.add_plane_segmentation(seg)
    ophys.add(container)
    return seg


def _traces(ophys, seg, contents: NwbContents, timing: dict, comment: str):
    from pynwb.ophys import Fluorescence, RoiResponseSeries

    est = contents.cnmfe
    k = int(est.A.shape[1])
    fluorescence = Fluorescence(name="Fluorescence")
    ophys.add(fluorescence)
    described = (
        ("denoised", est.C, "denoised calcium traces C of CNMF-E (baseline removed), frames x components"),
        ("raw", np.asarray(est.C) + np.asarray(est.YrA), "raw traces C + YrA (before denoising), frames x components"),
        ("deconvolved", est.S, "deconvolved activity S (OASIS), same units as C, frames x components"),
    )
    first = None
    for name, values, text in described:
        rois = seg.create_roi_table_region(region=list(range(k)), description="every component, in id order")
        data = np.ascontiguousarray(np.asarray(values, dtype=np.float32).T)
        series = RoiResponseSeries(name=name, data=_compressed(data, chunks=True), rois=rois, unit=UNIT,
                                   description=text, comments=comment,
                                   **(timing if first is None else _linked_timing(first, timing)))
        fluorescence.add_roi_response_series(series)
        if first is None:
            first = series
    return first


def _dropped_frames(nwb, frame_times: pd.DataFrame, times: np.ndarray) -> int:
    from pynwb.epoch import TimeIntervals

    dropped = np.asarray(frame_times.get("dropped_before", np.zeros(len(times))), dtype=np.int64)
    where = np.flatnonzero(dropped[1:] > 0) + 1
    if not len(where):
        return 0
    table = TimeIntervals(name="dropped_frames",
                          description="gaps in the frame times where the rig dropped frames: from the last frame "
                                      "before the gap to the first after it")
    table.add_column(name="n_frames_dropped", description="frames missing in the gap")
    table.add_column(name="frame_after", description="index (in the analysed frames) of the first frame after it")
    for i in where:
        table.add_interval(start_time=float(times[i - 1]), stop_time=float(times[i]),
                           n_frames_dropped=int(dropped[i]), frame_after=int(i))
    nwb.add_time_intervals(table)
    return int(dropped.sum())


def _motion(module, motion, first, timing: dict, notes: Mapping[str, str]) -> None:
    from hdmf.common import DynamicTable, VectorData
    from pynwb import TimeSeries

    convention = ("shift of the frame's content against the template, (dy, dx) px: observed(y, x) = "
                  "template(y - dy, x - dx); correction moves it back"
                  + (f" (motion correction engine {notes['engine']})" if "engine" in notes else ""))
    module.add(TimeSeries(name="rigid_shifts", data=_compressed(np.asarray(motion.rigid_shifts, np.float32)),
                          unit="pixels", description=f"rigid motion of each frame, columns (dy, dx): {convention}",
                          **_linked_timing(first, timing)))
    if motion.patch_shifts is None:
        return
    patches = np.asarray(motion.patch_shifts, np.float32)
    module.add(TimeSeries(name="patch_shifts", data=_compressed(patches), unit="pixels",
                          description=("piecewise-rigid shift of each patch, frames x patch rows x patch columns x "
                                       "(dy, dx), px; patch centres in patch_centers"),
                          **_linked_timing(first, timing)))
    centers = np.asarray(motion.patch_centers, np.float64)
    ny, nx = centers.shape[:2]
    rows, cols = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    module.add(DynamicTable(
        name="patch_centers", description="centre of each piecewise-rigid patch on the analysed field, px",
        columns=[VectorData(name="patch_row", data=rows.ravel(), description="patch row index"),
                 VectorData(name="patch_col", data=cols.ravel(), description="patch column index"),
                 VectorData(name="center_y", data=centers[..., 0].ravel(), description="centre row, px"),
                 VectorData(name="center_x", data=centers[..., 1].ravel(), description="centre column, px")]))


_EVENT_TEXT = {
    "component_id": "component (id in PlaneSegmentation)", "frame": "frame index of the event",
    "time_s": "time of the event, s (same clock as the traces)", "amplitude": "trace value at the event (a.u.)",
    "prominence": "prominence of the event (a.u.)", "method": "detection method",
    "threshold": "threshold used, in the method's units", "threshold_abs": "threshold in trace units (a.u.)",
    "noise_sigma": "robust noise of the trace (a.u.)", "phase_rad": "phase of the mean-field oscillation at the event",
    "line": "experiment line",
}


def _events(ophys, seg, events: pd.DataFrame) -> int:
    from hdmf.common import DynamicTable, DynamicTableRegion, VectorData

    if events is None or not len(events):
        return 0
    ev = events.reset_index(drop=True)
    columns = [DynamicTableRegion(name="roi", data=ev["component_id"].to_numpy(dtype=np.int64), table=seg,
                                  description="the event's component (row of PlaneSegmentation)")]
    for name in ev.columns:
        values = ev[name]
        data = values.astype(str).tolist() if values.dtype == object or str(values.dtype).startswith("str") \
            else values.to_numpy()
        columns.append(VectorData(name=str(name), data=data,
                                  description=_EVENT_TEXT.get(str(name), f"the events table's '{name}' column")))
    ophys.add(DynamicTable(name="calcium_events", description="calcium events of the accepted components, one row "
                                                              "per event", columns=columns))
    return len(ev)


def _parameters(nwb, parameters: Mapping[str, StageParams], digest: str) -> None:
    from hdmf.common import DynamicTable, VectorData

    rows = []
    for stage, p in parameters.items():
        stage_hash = params_hash(p)
        for decl in declarations(type(p)):
            rows.append((stage, decl.field, decl.name, json.dumps(getattr(p, decl.field), default=list), stage_hash))
    module = nwb.create_processing_module(
        name="provenance", description=f"how this file was made: ace-neuro {__version__}, parameters hash {digest}")
    names = ("stage", "field", "csv_name", "value_json", "stage_hash")
    texts = ("stage of the analysis", "parameter's name in the code", "column of analysis_parameters.csv",
             "value used, as JSON", "hash of the stage's parameters (changes when any of them does)")
    module.add(DynamicTable(
        name="analysis_parameters", description=f"every parameter the analysis used; hash over all stages {digest}",
        columns=[VectorData(name=n, data=[r[i] for r in rows], description=t)
                 for i, (n, t) in enumerate(zip(names, texts))]))


def _summary_images(ophys, images: Mapping[str, np.ndarray]) -> None:
    from pynwb.base import Images
    from pynwb.image import GrayscaleImage

    if not images:
        return
    ophys.add(Images(name="summary_images", description="projections of the raw movie on the raw frame",
                     images=[GrayscaleImage(name=name, data=np.asarray(img, dtype=np.float32),
                                            description=f"{name} projection of the raw movie")
                             for name, img in images.items()]))


def _movie(ophys, plane, contents: NwbContents, first, timing: dict, chunk_frames: int) -> None:
    from pynwb.ophys import OnePhotonSeries

    from .chunks import MovieFrames

    box = contents.crop_box
    ophys.add(OnePhotonSeries(
        name="motion_corrected", imaging_plane=plane, unit=UNIT,
        data=_compressed(MovieFrames(contents.movie, chunk_frames=chunk_frames)),
        description=(f"the motion-corrected movie CNMF-E analysed: frames x rows x columns of the analysed field "
                     f"(raw frame rows {box.row0}..{box.row1 - 1}, columns {box.col0}..{box.col1 - 1})"
                     + (f"; {contents.movie_note}" if contents.movie_note else "")),
        **_linked_timing(first, timing)))


# ------------------------------------------------------------------------------------------------ entry point
def write_nwb(path: str | os.PathLike, session: SessionInfo, contents: NwbContents, *,
              chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> NwbExport:
    """Write one line's NWB file, atomically.

    Parameters
    ----------
    path : path
        Destination (``.nwb``); its folder is created. An existing file is replaced only once the new
        one is complete.
    session : SessionInfo
        Subject, session and device metadata (:func:`~ace_neuro.export.session.session_info`).
    contents : NwbContents
        The results.
    chunk_frames : int
        Frames per HDF5 chunk of the movie (when ``contents.movie`` is given).

    Returns
    -------
    NwbExport

    Raises
    ------
    NwbInputError
        When the results do not belong together (frame counts, component ids, crop box).
    """
    from pynwb import NWBHDF5IO

    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    times = _check(contents)
    digest = combined_parameters_hash(contents.parameters)
    nwb = _nwb_file(session, contents, digest)
    plane = _imaging_plane(nwb, _device(nwb, session), session, contents)
    ophys = nwb.create_processing_module(name="ophys", description="CNMF-E segmentation, traces and calcium events")
    timing = _timing(times)
    n_dropped = _dropped_frames(nwb, contents.frame_times, times)
    comment = (f"{n_dropped} frame(s) dropped by the rig: the timestamps skip them (intervals/dropped_frames)"
               if n_dropped else "no dropped frames")
    k = int(contents.cnmfe.A.shape[1])
    first = n_events = None
    if k:
        seg = _segmentation(ophys, plane, contents)
        first = _traces(ophys, seg, contents, timing, comment)
        n_events = _events(ophys, seg, contents.events)
    _summary_images(ophys, contents.summary_images)
    if contents.motion is not None:
        _motion(ophys, contents.motion, first, timing, contents.notes)
    if contents.movie is not None:
        _movie(ophys, plane, contents, first, timing, chunk_frames)
    _parameters(nwb, contents.parameters, digest)
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # the hidden temporary's name does not end in .nwb; the file it becomes does
        warnings.filterwarnings("ignore", message=".*does not end in '.nwb'")
        with NWBHDF5IO(str(tmp), mode="w") as io:
            io.write(nwb)
    comps = contents.components
    return NwbExport(path=path, size_bytes=path.stat().st_size, identifier=nwb.identifier, n_components=k,
                     n_accepted=int(comps["accepted"].sum()) if len(comps) else 0, n_frames=len(times),
                     n_events=int(n_events or 0), n_dropped_frames=n_dropped,
                     movie_included=contents.movie is not None, motion_included=contents.motion is not None,
                     parameters_hash=digest, missing_metadata=tuple(session.missing()))


def write_recording_nwb(path: str | os.PathLike, frames, times, *, session_start_time, subject_id: str,
                        device_type: str = "Miniscope", description: str = "miniscope recording",
                        chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> Path:
    """Write a raw recording as an NWB acquisition file (a ``OnePhotonSeries``), atomically.

    The file the NWB reader (:class:`ace_neuro.readers.nwb.NwbReader`) reads as a session: frames are
    copied from ``frames`` (T, H, W), anything sliceable along frames, a few chunks at a time.

    Parameters
    ----------
    path : path
    frames : array-like, shape (T, H, W)
    times : array, shape (T,)
        Frame times, seconds; evenly spaced times are stored as a start time and rate.
    session_start_time : datetime (timezone-aware)
    subject_id : str
    device_type, description : str
    chunk_frames : int
        Frames per HDF5 chunk.

    Returns
    -------
    Path
    """
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject
    from pynwb.ophys import OnePhotonSeries, OpticalChannel
    from ndx_miniscope import Miniscope

    from .chunks import MovieFrames
    from .session import MINISCOPE_EMISSION_NM, MINISCOPE_EXCITATION_NM

    times = np.asarray(times, dtype=np.float64)
    if len(times) != int(frames.shape[0]):
        raise ValueError(f"{len(times)} frame times for {frames.shape[0]} frames")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    nwb = NWBFile(session_description=description, identifier=str(uuid.uuid4()),
                  session_start_time=session_start_time, subject=Subject(subject_id=subject_id))
    device = Miniscope(name="Miniscope", description=f"UCLA Miniscope ({device_type})", deviceType=device_type,
                       ROI=[int(frames.shape[1]), int(frames.shape[2])])
    nwb.add_device(device)
    plane = nwb.create_imaging_plane(
        name="ImagingPlane", device=device, description="the sensor's frame", indicator="unknown",
        location="unknown", excitation_lambda=MINISCOPE_EXCITATION_NM,
        optical_channel=OpticalChannel(name="OpticalChannel", description="green emission",
                                       emission_lambda=MINISCOPE_EMISSION_NM))
    nwb.add_acquisition(OnePhotonSeries(
        name="OnePhotonSeries", imaging_plane=plane, unit="n.a.", description=description,
        data=_compressed(MovieFrames(frames, chunk_frames=chunk_frames)), **_timing(times)))
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not end in '.nwb'")
        with NWBHDF5IO(str(tmp), mode="w") as io:
            io.write(nwb)
    return path


@dataclass(frozen=True)
class NwbInspection:
    """nwbinspector's verdict on a file: message counts by importance, and the messages."""

    counts: Mapping[str, int]
    messages: tuple[str, ...]

    @property
    def clean(self) -> bool:
        """No CRITICAL issue and no BEST_PRACTICE_VIOLATION."""
        return not (self.counts.get("CRITICAL", 0) or self.counts.get("BEST_PRACTICE_VIOLATION", 0)
                    or self.counts.get("ERROR", 0))


def inspect_nwb(path: str | os.PathLike) -> NwbInspection | None:
    """Run nwbinspector on a file (None when nwbinspector is not installed: ``pip install nwbinspector``)."""
    try:
        from nwbinspector import inspect_nwbfile
    except ImportError:
        return None
    counts: dict[str, int] = {}
    messages = []
    for m in inspect_nwbfile(nwbfile_path=str(path)):
        level = m.importance.name
        counts[level] = counts.get(level, 0) + 1
        messages.append(f"{level}: {m.check_function_name} at {m.location}: {m.message}")
    return NwbInspection(counts=counts, messages=tuple(messages))


def export_summary(result: NwbExport) -> dict:
    """The result as plain values."""
    out = asdict(result)
    out["path"] = str(result.path)
    out["missing_metadata"] = list(result.missing_metadata)
    return out


__all__ = ["DEFAULT_CHUNK_FRAMES", "NwbContents", "NwbExport", "NwbInputError", "NwbInspection",
           "combined_parameters_hash", "export_summary", "inspect_nwb", "write_nwb", "write_recording_nwb"]
