"""``nwb_file``: the line's results as one NWB file, ``<storage root>/nwb_file/<line>.nwb``.

The asset writes the file itself (atomically, see :func:`ace_neuro.export.write_nwb`) and returns a
``MaterializeResult``: nothing downstream loads it, so no IO manager stores a second copy; the path is
in the metadata and fixed by the layout.

Under a URL storage root (``s3://...``) the file is written in a local temporary folder (HDF5 needs a
local file), inspected there, then uploaded as a version with its marker (see :mod:`ace_neuro.storage`).
"""

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, MaterializeResult, MetadataValue, asset

from ace_neuro.export import NwbContents, inspect_nwb, session_info, write_nwb
from ace_neuro.movie import Movie
from ace_neuro import storage
from ace_neuro.params import params_hash
from ace_neuro.readers import open_recording
from ace_neuro.stages.cnmfe import CnmfeResult
from ace_neuro.stages.crop import CropBox, crop_box_from_coords
from ace_neuro.stages.motion import motion_result_from_arrays
from resources import ProjectResource
from resources.failures import reports_failures
from resources.figures import FigureStore

from .metadata import jsonable, params_metadata
from .parameters import PARAMETER_ASSETS
from .partitions import lines_partitions

NWB_FOLDER = "nwb_file"  # <storage root>/<asset>/<line>.<ext>, like every asset


def nwb_path(storage_root: str | Path, line: str | int) -> Path | str:
    """Where a line's NWB file lives under a storage root (a URL under a URL root)."""
    return storage.join(storage_root, NWB_FOLDER, f"{line}.nwb")


def _crop_box(crop, frame_shape: tuple[int, int]) -> CropBox:
    if crop.enabled and crop.coords is not None:
        return crop_box_from_coords(crop.coords, frame_shape)
    return CropBox(0, frame_shape[0], 0, frame_shape[1])


def _motion(movie: Movie, params):
    if "rigid_shifts" not in movie.extras:
        return None
    return motion_result_from_arrays({k: v[:] for k, v in movie.extras.items()}, params)


@asset(partitions_def=lines_partitions, group_name="export", kinds={"nwb"},
       ins={"raw_movie": AssetIn(), "frame_times": AssetIn(), "motion_corrected_movie": AssetIn(),
            "cnmfe_estimates": AssetIn(), "accepted_components": AssetIn(), "calcium_events": AssetIn(),
            **{name: AssetIn() for name in PARAMETER_ASSETS}},
       description="The line's results as one NWB file (<storage root>/nwb_file/<line>.nwb): subject, session and "
                   "Miniscope metadata, every component (accepted and rejected) with image masks on the raw frame, "
                   "C / C + YrA / S traces on the recording's timestamps, dropped-frame gaps, motion shifts, calcium "
                   "events, the parameters and their hashes; the motion-corrected movie with nwb_include_movie.")
@reports_failures
def nwb_file(context: AssetExecutionContext, figures: FigureStore, project: ProjectResource, raw_movie: Movie,
             frame_times: pd.DataFrame, motion_corrected_movie: Movie, cnmfe_estimates: CnmfeResult,
             accepted_components: pd.DataFrame, calcium_events: pd.DataFrame, **parameter_snapshots):
    line = context.partition_key
    params = {PARAMETER_ASSETS[name]: value for name, value in parameter_snapshots.items()}
    proj = project.load()
    experiment = proj.experiment(int(line))
    recording = open_recording(proj.session_dir(int(line)), filenames=(project.overrides or {}).get("filenames"))
    session = session_info(experiment, recording.info)
    export = params["export"]
    motion_on = "rigid_shifts" in motion_corrected_movie.extras
    contents = NwbContents(
        cnmfe=cnmfe_estimates, components=accepted_components, frame_times=frame_times,
        raw_frame_shape=raw_movie.frame_shape, crop_box=_crop_box(params["crop"], raw_movie.frame_shape),
        parameters=params, events=calcium_events, motion=_motion(motion_corrected_movie, params["motion"]),
        movie=motion_corrected_movie.frames if export.include_movie else None,
        movie_note="" if motion_on else "motion correction was off: the movie as it entered motion correction",
        summary_images={name: raw_movie.extras[f"{name}_projection"][:] for name in ("mean", "max")
                        if f"{name}_projection" in raw_movie.extras},
        notes={"engine": params["engine"].name,
               "CNMF-E parameters used": json.dumps(jsonable(dict(cnmfe_estimates.params)), default=str)},
    )
    target = nwb_path(figures.base_path, line)
    if isinstance(target, str):
        with tempfile.TemporaryDirectory(prefix="ace-nwb-") as tmp:
            result = write_nwb(Path(tmp) / f"{line}.nwb", session, contents)
            inspection = inspect_nwb(result.path)
            result = replace(result, path=storage.publish_file(result.path, target))
    else:
        result = write_nwb(target, session, contents)
        inspection = inspect_nwb(result.path)
    for gap in result.missing_metadata:
        context.log.warning(f"line {line}: the NWB file lacks the {gap}")
    verdict = ("nwbinspector not installed (pip install nwbinspector)" if inspection is None else
               ("clean (no critical issue, no best-practice violation)" if inspection.clean else "issues found"))
    return MaterializeResult(metadata={
        **params_metadata(export, params_hash(export)),
        "path": MetadataValue.path(str(result.path)), "size_mb": round(result.size_bytes / 2 ** 20, 3),
        "identifier": result.identifier, "n_components": result.n_components, "n_accepted": result.n_accepted,
        "n_events": result.n_events, "frames": result.n_frames, "dropped_frames": result.n_dropped_frames,
        "movie_included": result.movie_included, "motion_included": result.motion_included,
        "all_parameters_hash": result.parameters_hash, "device_type": result.device_type,
        "missing_metadata": MetadataValue.md("\n".join(f"- {m}" for m in result.missing_metadata) or "none"),
        "nwbinspector": verdict,
        **({} if inspection is None else {
            "nwbinspector_counts": MetadataValue.json(dict(inspection.counts)),
            "nwbinspector_messages": MetadataValue.md("\n".join(f"- {m}" for m in inspection.messages[:30])
                                                      or "none")}),
    })
