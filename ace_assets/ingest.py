"""Ingest: ``raw_movie`` (zarr, frames decoded once) and ``frame_times`` (parquet)."""

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, asset

from ace_neuro.ingest import frame_times_table, recording_stream
from ace_neuro.movie import Movie, MovieStream
from ace_neuro.plots.movie import plot_projections
from ace_neuro.readers import open_recording
from resources import ProjectResource
from resources.failures import reports_failures
from resources.figures import FigureStore

from .partitions import lines_partitions


def _reader(context: AssetExecutionContext, project: ProjectResource):
    line = int(context.partition_key)
    proj = project.load()
    filenames = (project.overrides or {}).get("filenames")  # the lab API's chunk selection
    return open_recording(proj.session_dir(line), filenames=filenames), proj.experiment(line)


@asset(partitions_def=lines_partitions, io_manager_key="zarr_io", group_name="ingest", kinds={"zarr"},
       description="Frames decoded once from the miniscope's raw videos (native dtype), with frame times.")
@reports_failures
def raw_movie(context: AssetExecutionContext, figures: FigureStore, project: ProjectResource) -> MovieStream:
    reader, experiment = _reader(context, project)
    info = reader.info
    for w in info.warnings:
        context.log.warning(w)
    stream = recording_stream(reader)
    stream.attrs.update({"line_num": experiment.line_num, "subject_id": experiment.subject_id,
                         "date": experiment.date})

    def describe(movie: Movie) -> dict:
        return {
            "format": info.format,
            "device": info.device,
            "shape": MetadataValue.json(list(stream.shape)),
            "dtype": str(stream.dtype),
            "frame_rate_hz": round(info.frame_rate, 4),
            "duration_s": round(info.duration_s, 2),
            "dropped_frames": info.n_dropped,
            "video_files": len(info.chunks),
            "session_dir": MetadataValue.path(str(info.session_dir)),
            "warnings": MetadataValue.md("\n".join(f"- {w}" for w in info.warnings) or "none"),
            "preview": figures.preview(context, "preview", plot_projections(
                movie.extras["mean_projection"][:], movie.extras["max_projection"][:],
                title=f"line {experiment.line_num} raw")),
        }

    stream.describe = describe
    return stream


@asset(partitions_def=lines_partitions, io_manager_key="parquet_io", group_name="ingest", kinds={"parquet"},
       description="One row per frame: index, rig frame number, time (s), source file, dropped-frame flags.")
@reports_failures
def frame_times(context: AssetExecutionContext, project: ProjectResource) -> pd.DataFrame:
    reader, _ = _reader(context, project)
    table = frame_times_table(reader)
    info = reader.info
    context.add_output_metadata({"frames": len(table), "frame_rate_hz": round(info.frame_rate, 4),
                                 "dropped_frames": info.n_dropped,
                                 "median_frame_interval_ms": round(1000 * float(table["time_s"].diff().median()), 3)
                                 if len(table) > 1 else 0.0})
    return table
