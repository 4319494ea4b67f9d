"""Parameter snapshots: typed round trip, and a changed CSV row marks only the affected stage."""
import numpy as np
import pytest
from dagster import DagsterInstance, materialize

from ace_assets.definitions import build_resources
from ace_assets.parameters import PARAMETER_ASSETS, line_parameters
from ace_assets.partitions import sync_line_partitions
from ace_assets.preprocess import cropped_movie
from ace_assets.ingest import raw_movie
from ace_assets.staleness import changed_inputs, current_data_version
from ace_neuro.params import MotionParams, params_from_dict, params_to_dict
from ace_neuro.project import Project, save_crop_coords
from ace_neuro.synthetic.project import write_demo_project
from resources import ProjectResource


def test_params_round_trip_through_json_dict():
    p = MotionParams(max_shifts=(9, 11), gSig_filt=None, strides=(30, 40))
    assert params_from_dict(params_to_dict(p)) == p


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return write_demo_project(out, lines=(96,), height=64, width=64, n_frames=120)


def test_changed_row_marks_only_affected_stage_stale(demo, tmp_path):
    instance = DagsterInstance.ephemeral()
    project = ProjectResource(project_path=str(demo.project_path), data_path=str(demo.data_path))
    sync_line_partitions(instance, project.load())
    resources = build_resources(project, str(tmp_path / "store"))
    assets = [line_parameters, raw_movie, cropped_movie]
    assert materialize(assets, partition_key="96", instance=instance, resources=resources).success
    v_crop = current_data_version(instance, "crop_parameters", "96")
    v_motion = current_data_version(instance, "motion_parameters", "96")
    assert changed_inputs(instance, "cropped_movie", "96") == []
    # a person draws a crop: the CSV changes, the snapshots are re-materialised
    save_crop_coords(demo.project_path, 96, (4, 60, 60, 4))
    assert materialize([line_parameters], partition_key="96", instance=instance, resources=resources).success
    assert current_data_version(instance, "crop_parameters", "96") != v_crop
    assert current_data_version(instance, "motion_parameters", "96") == v_motion  # unchanged stage
    assert changed_inputs(instance, "cropped_movie", "96") == ["crop_parameters"]
    # re-materialising the stage picks the new snapshot up and clears the staleness
    res = materialize(assets, partition_key="96", instance=instance, resources=resources,
                      selection=["cropped_movie"])
    assert res.success and changed_inputs(instance, "cropped_movie", "96") == []
    from ace_neuro.storage import open_movie
    assert open_movie(tmp_path / "store" / "cropped_movie" / "96.zarr").frames.shape[1:] == (56, 56)


def test_every_stage_has_a_snapshot_that_a_stage_reads():
    import dataclasses

    from ace_assets.definitions import all_assets
    from ace_neuro.params import PipelineParams

    assert sorted(PARAMETER_ASSETS.values()) == sorted(f.name for f in dataclasses.fields(PipelineParams))
    readers: dict[str, set[str]] = {}
    for a in all_assets():
        for key in a.keys:
            for dep in a.asset_deps.get(key, ()):
                readers.setdefault(dep.to_user_string(), set()).add(key.to_user_string())
    unread = [name for name in PARAMETER_ASSETS if not readers.get(name)]
    assert unread == [], f"snapshots no stage reads (a stage reads the CSV instead?): {unread}"
    assert {"motion_corrected_movie", "cnmfe_estimates"} <= readers["engine_parameters"]


def test_changing_the_engine_marks_the_heavy_stages_stale(demo, tmp_path):
    import shutil

    from ace_neuro.project.csvfile import read_csv_text

    project_path = tmp_path / "project"  # a copy: the module's demo project stays as it was
    shutil.copytree(demo.project_path, project_path)
    instance = DagsterInstance.ephemeral()
    project = ProjectResource(project_path=str(project_path), data_path=str(demo.data_path))
    sync_line_partitions(instance, project.load())
    resources = build_resources(project, str(tmp_path / "store"))
    assert materialize([line_parameters], partition_key="96", instance=instance, resources=resources).success
    v_engine = current_data_version(instance, "engine_parameters", "96")
    v_motion = current_data_version(instance, "motion_parameters", "96")
    path = project_path / "analysis_parameters.csv"
    text = read_csv_text(path).text
    header, *rows = text.splitlines(keepends=True)
    path.write_text(header.rstrip("\r\n") + ",engine\n" + "".join(r.rstrip("\r\n") + ",caiman\n" for r in rows
                                                                     if r.strip(",\r\n")))
    assert materialize([line_parameters], partition_key="96", instance=instance, resources=resources).success
    assert current_data_version(instance, "engine_parameters", "96") != v_engine
    assert current_data_version(instance, "motion_parameters", "96") == v_motion


def test_editing_the_curation_file_marks_accepted_components_stale(tmp_path):
    from ace_assets.runner import materialize_lines
    from ace_neuro.project import curation_file
    from ace_neuro.stages.evaluation import Curation, save_curation

    demo = write_demo_project(tmp_path / "demo", lines=(96,), height=48, width=56, n_frames=120,
                              frames_per_file=60, seed=2)
    instance = DagsterInstance.ephemeral()
    kwargs = dict(project_path=str(demo.project_path), data_path=str(demo.data_path),
                  storage_root=str(tmp_path / "store"), instance=instance)
    (run,) = materialize_lines([96], **kwargs)
    assert run.success and changed_inputs(instance, "accepted_components", "96") == []
    ids = run.metadata["accepted_components"]["n_components"]
    assert ids > 0
    save_curation(curation_file(demo.project_path, 96), Curation(rejected=(0,)))
    (run,) = materialize_lines([96], selection=["component_curation"], **kwargs)
    assert run.success and changed_inputs(instance, "accepted_components", "96") == ["component_curation"]
    (run,) = materialize_lines([96], selection=["accepted_components"], **kwargs)
    assert run.metadata["accepted_components"]["manually_rejected"] == 1
    assert changed_inputs(instance, "accepted_components", "96") == []


def test_the_csv_files_are_read_once_per_run(demo, tmp_path, monkeypatch):
    from ace_assets.runner import materialize_lines
    from ace_neuro.project import tables

    loads = []
    original = tables.Project.load.__func__

    def counted(cls, *args, **kwargs):
        loads.append(args)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(tables.Project, "load", classmethod(counted))
    (run,) = materialize_lines([96], project_path=str(demo.project_path), data_path=str(demo.data_path),
                               storage_root=str(tmp_path / "store"), instance=DagsterInstance.ephemeral(),
                               selection=[*PARAMETER_ASSETS, "raw_movie", "frame_times", "cropped_movie",
                                          "component_curation"])
    assert run.success
    assert len(loads) == 2  # once to list the lines (partitions), once by the run's project resource
