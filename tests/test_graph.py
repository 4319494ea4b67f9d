"""The whole asset graph for one small synthetic line: every asset materialises, every check passes."""
import pytest
from dagster import DagsterInstance

from ace_assets.definitions import all_assets, all_checks
from ace_assets.partitions import lines_partitions
from ace_assets.runner import materialize_lines
from ace_neuro.synthetic.project import write_demo_project

STAGES = ["raw_movie", "frame_times", "cropped_movie", "dff_movie", "motion_corrected_movie", "cnmfe_summary_images",
          "cnmfe_estimates", "accepted_components", "calcium_phase", "calcium_events", "spectrograms"]

STORAGE_KEYS = {"path", "rows", "columns", "bytes", "chunks", "dagster/row_count", "dagster/column_schema"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("graph")
    demo = write_demo_project(out, lines=(96,), height=96, width=96, n_frames=500)
    instance = DagsterInstance.ephemeral()
    [line_run] = materialize_lines([96], project_path=str(demo.project_path), data_path=str(demo.data_path),
                                   storage_root=str(out / "storage"), instance=instance,
                                   run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    return line_run, instance


def test_every_asset_materialises(run):
    line_run, _ = run
    assert line_run.success, line_run.error
    for stage in STAGES:
        assert stage in line_run.metadata, stage
    assert line_run.metadata["accepted_components"]["n_accepted"] > 0
    assert line_run.metadata["motion_corrected_movie"]["corrected"] is True


def test_metadata_opens_with_findings_and_ends_with_parameters(run):
    line_run, _ = run
    for stage in STAGES:
        keys = list(line_run.metadata[stage])
        if "parameters" in keys:  # the IO manager's storage entries (path, size) follow
            at = keys.index("parameters_hash")
            assert keys[at + 1] == "parameters", (stage, keys)
            assert set(keys[at + 2:]) <= STORAGE_KEYS, (stage, keys)
    est, acc = line_run.metadata["cnmfe_estimates"], line_run.metadata["accepted_components"]
    assert "contours" not in est and "parameters_used" not in est
    assert est["preview"] != acc["preview"]  # each figure once, on the asset it describes
    assert {"snr_quartiles_accepted", "r_value_quartiles_accepted", "n_rejected"} <= set(acc)
    assert "initial seeds" in est["seeds_note"]


def test_every_check_passes(run):
    line_run, instance = run
    results = [e for e in instance.all_logs(line_run.run_id) if e.dagster_event
               and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    checks = {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
              for e in results}
    expected = {k.name for k in [spec.key for c in all_checks() for spec in c.check_specs]}
    assert set(checks) == expected
    assert all(checks.values()), {k: v for k, v in checks.items() if not v}


def test_every_check_result_belongs_to_its_line(run):
    """After a backfill of many lines the check history must say which line failed: each evaluation is
    recorded against the line's partition, and the latest one per line can be looked up."""
    line_run, instance = run
    evaluations = [e.dagster_event.event_specific_data for e in instance.all_logs(line_run.run_id)
                   if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert evaluations
    assert {ev.partition for ev in evaluations} == {"96"}
    assert all(spec.partitions_def == lines_partitions for c in all_checks() for spec in c.check_specs)


def test_graph_has_every_stage_of_the_spec():
    keys = {k.to_user_string() for a in all_assets() for k in a.keys}
    assert set(STAGES) <= keys


def test_switched_off_stages_leave_empty_tables_not_a_crash(tmp_path):
    """run_CNMFE = FALSE and compute_miniscope_phase = FALSE: CNMF-E does not run (it used to run anyway), the
    components and events are empty, every check passes or says it skipped, and the report still renders."""
    demo = write_demo_project(tmp_path, lines=(96,), height=64, width=64, n_frames=300)
    instance = DagsterInstance.ephemeral()
    [line_run] = materialize_lines([96], project_path=str(demo.project_path), data_path=str(demo.data_path),
                                   storage_root=str(tmp_path / "storage"), instance=instance,
                                   overrides={"run_CNMFE": False, "compute_miniscope_phase": False},
                                   run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    assert line_run.success, line_run.error
    est = line_run.metadata["cnmfe_estimates"]
    assert est["components"] == 0 and "run_CNMFE is FALSE" in est["skipped"]
    assert line_run.metadata["accepted_components"]["n_components"] == 0
    assert line_run.metadata["calcium_events"]["n_events"] == 0
    failed = [e.dagster_event.event_specific_data.check_name for e in instance.all_logs(line_run.run_id)
              if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
              and not e.dagster_event.event_specific_data.passed]
    assert failed == []
    assert line_run.metadata["line_report"]["figures"] > 0
