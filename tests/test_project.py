"""The lab's project files: reading as real files are, errors that name file/row/column, safe write-back."""
import logging
from pathlib import Path

import pytest

from ace_neuro.params import ParameterError, build_pipeline_params
from ace_neuro.project import Project, ProjectError, parse_cell, save_crop_coords

EXPERIMENTS = (
    "line number,id,date (YYMMDD),calcium imaging directory,Box Calcium Folder ID,ephys directory,"
    "rat weight (kg),systemic drug,comments\r\n"
    "line number (int),subject,YYMMDD,relative to data path,,,,,documentation row\r\n"
    "96,R230706B,230901,R230706B\\230901\\calcium,12345,NA,0.41,None,\"first, good\"\r\n"
    "97,R230706B,230902,R230706B/230902,,,0.40,saline,\r\n"
    ",,,,,,,,\r\n"
    ",,,,,,,,\r\n"
)
PARAMETERS = (
    "line number,id,crop,gSig,min_corr,detrend_method,df_over_f,max_shifts,pw_rigid,gSig_flt,SNR_lowest,zero time (s)\r\n"
    "line number (int),,\"(x0, y0, x1, y1)\",,,,,,,,,\r\n"
    "96,R230706B,\"(67,503, 555,61)\",\"(4, 4)\",0.85,median,TRUE,\"(10, 10)\",false,\"(7,7)\",0.5,12.5\r\n"
    "97,R230706B,None,NA,,,,,,,,\r\n"
    ",,,,,,,,,,,\r\n"
)


@pytest.fixture()
def project(tmp_path):
    proj = tmp_path / "project"
    data = tmp_path / "data"
    proj.mkdir()
    (data / "R230706B" / "230901" / "calcium").mkdir(parents=True)
    (proj / "experiments.csv").write_bytes(EXPERIMENTS.encode())
    (proj / "analysis_parameters.csv").write_bytes(PARAMETERS.encode())
    return proj, data


@pytest.mark.parametrize("text,value", [
    ("", None), ("None", None), ("NA", None), ("nan", None), (" TRUE ", True), ("false", False),
    ("3", 3), ("0.85", 0.85), ("1e3", 1000.0), ("(3, 3)", (3, 3)), ("(67,503, 555,61)", (67, 503, 555, 61)),
    ("[0.1, 1.5]", (0.1, 1.5)), ("corr_pnr", "corr_pnr"), ("median", "median"),
])
def test_cells_parse_by_their_own_text(text, value):
    assert parse_cell(text) == value
    assert type(parse_cell(text)) is type(value)


def test_lines_are_keys_not_positions(project):
    proj, data = project
    p = Project.load(proj, data)
    assert p.line_numbers == [96, 97]  # documentation and empty rows skipped
    e = p.experiment(96)
    assert e.subject_id == "R230706B" and e.date == "230901"
    assert e.metadata["comments"] == "first, good"
    assert e.metadata["rat weight (kg)"] == "0.41"
    # Windows path resolved under the data path
    assert p.session_dir(96) == data / "R230706B" / "230901" / "calcium"


def test_parameters_typed_with_defaults_and_csv_overrides(project):
    proj, data = project
    p = Project.load(proj, data)
    par = p.params(96)
    assert par.crop.coords == (67, 503, 555, 61)  # legacy 'crop' column accepted
    assert par.cnmfe.gSig == (4, 4) and par.cnmfe.gSiz == (17, 17)
    assert par.cnmfe.min_corr == 0.85
    assert par.detrend.method == "median" and par.dff.enabled is True
    assert par.motion.max_shifts == (10, 10) and par.motion.pw_rigid is False
    default = p.params(97)
    assert default.crop.coords is None and default.cnmfe.gSig == (3, 3) and default.cnmfe.min_pnr == 10
    # explicit arguments win over the CSV
    assert p.params(96, overrides={"gSig": (5, 5), "crop_coords": (0, 10, 20, 0)}).cnmfe.gSig == (5, 5)


def test_unknown_and_unsupported_columns_are_named(project, caplog):
    proj, data = project
    with caplog.at_level(logging.WARNING):
        Project.load(proj, data).params(96)
    text = caplog.text
    assert "gSig_flt" in text and "typo" in text
    assert "SNR_lowest" in text and "does not implement" in text
    assert "zero time (s)" not in text  # ephys metadata is not a parameter


def test_missing_line_number_names_file_row_column(project):
    proj, data = project
    (proj / "experiments.csv").write_text(EXPERIMENTS.replace("97,R230706B", ",R230706B"))
    with pytest.raises(ProjectError) as err:
        Project.load(proj, data)
    msg = str(err.value)
    assert "experiments.csv" in msg and "row 4" in msg and "'line number'" in msg


def test_duplicated_line_number_names_both_rows(project):
    proj, data = project
    (proj / "experiments.csv").write_text(EXPERIMENTS.replace("97,R230706B", "96,R230706B"))
    with pytest.raises(ProjectError, match=r"rows 3 and 4.*line number 96 appears twice"):
        Project.load(proj, data)


def test_missing_session_folder_is_a_clear_error(project):
    proj, data = project
    p = Project.load(proj, data)
    with pytest.raises(ProjectError, match=r"row 4, column 'calcium imaging directory'.*does not exist"):
        p.session_dir(97)


def test_unknown_line_says_it_is_not_a_row_position(project):
    proj, data = project
    with pytest.raises(ProjectError, match="not by row position"):
        Project.load(proj, data).experiment(2)


def test_bad_parameter_names_row_and_parameter(project):
    proj, data = project
    (proj / "analysis_parameters.csv").write_text(PARAMETERS.replace("0.85,median", "1.85,median"))
    with pytest.raises(ParameterError, match=r"'min_corr' = 1.85 .from .*analysis_parameters.csv, row 3") as info:
        Project.load(proj, data).params(96)
    err = info.value
    assert (err.category, err.parameter, err.row) == ("parameters", "min_corr", 3)
    assert err.file.endswith("analysis_parameters.csv")


def test_parameter_errors_for_each_kind():
    with pytest.raises(ParameterError, match="gSig"):
        build_pipeline_params({"gSig": "big"})
    with pytest.raises(ParameterError, match="nb"):
        build_pipeline_params({"nb": 2})
    with pytest.raises(ParameterError, match="use_cnn"):
        build_pipeline_params({"use_cnn": True})
    with pytest.raises(ParameterError, match="detrend_method"):
        build_pipeline_params({"detrend_method": "cubic"})
    with pytest.raises(ParameterError, match="crop_coords"):
        build_pipeline_params({"crop_coords": (1, 2, 3)})


def test_save_crop_adds_column_and_keeps_every_other_byte(project):
    proj, _ = project
    path = proj / "analysis_parameters.csv"
    before = path.read_bytes()
    save_crop_coords(proj, 97, (10, 200, 150, 20))
    after = path.read_bytes()
    old_lines = before.split(b"\r\n")
    new_lines = after.split(b"\r\n")
    assert len(old_lines) == len(new_lines)
    assert new_lines[0] == old_lines[0] + b",crop_coords"
    assert new_lines[1] == old_lines[1] + b","          # documentation row: one empty field
    assert new_lines[2] == old_lines[2] + b","          # untouched row keeps its quoting
    assert new_lines[3] == old_lines[3] + b',"(10, 200, 150, 20)"'
    assert new_lines[4] == old_lines[4]                 # empty trailing row untouched
    p = Project.load(proj, proj.parent / "data")
    assert p.params(97).crop.coords == (10, 200, 150, 20)  # round-trips
    assert p.params(96).crop.coords == (67, 503, 555, 61)


def test_save_crop_twice_replaces_only_that_cell(project):
    proj, _ = project
    path = proj / "analysis_parameters.csv"
    save_crop_coords(proj, 97, (1, 2, 3, 4))
    mid = path.read_bytes()
    save_crop_coords(proj, 97, (5, 60, 70, 8))
    after = path.read_bytes()
    assert after == mid.replace(b'"(1, 2, 3, 4)"', b'"(5, 60, 70, 8)"')


def test_save_crop_for_a_line_without_row_appends_one(project):
    proj, _ = project
    save_crop_coords(proj, 98, (0, 9, 9, 0))
    text = (proj / "analysis_parameters.csv").read_text()
    assert '98,,,,,,,,,,,,"(0, 9, 9, 0)"' in text
    assert Project.load(proj).parameter_values(98)["crop_coords"] == (0, 9, 9, 0)


def test_interrupted_save_leaves_file_intact(project, monkeypatch):
    proj, _ = project
    path = proj / "analysis_parameters.csv"
    before = path.read_bytes()
    import os

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_crop_coords(proj, 96, (1, 2, 3, 4))
    assert path.read_bytes() == before
    assert [p.name for p in proj.iterdir() if p.name.startswith(".")] == []


def test_save_crop_keeps_a_cp1252_file_cp1252(project):
    proj, _ = project
    path = proj / "analysis_parameters.csv"
    text = PARAMETERS.replace('97,R230706B,None', '97,R230706B caf\u00e9 \u00b5m,None')
    path.write_bytes(text.encode("cp1252"))
    before = path.read_bytes()
    save_crop_coords(proj, 97, (1, 2, 3, 4))
    after = path.read_bytes()
    assert "caf\u00e9 \u00b5m".encode("cp1252") in after and "caf\u00e9".encode("utf-8") not in after
    old_lines, new_lines = before.split(b"\r\n"), after.split(b"\r\n")
    assert new_lines[3] == old_lines[3] + b',"(1, 2, 3, 4)"' and new_lines[4] == old_lines[4]
    assert Project.load(proj).parameter_values(97)["crop_coords"] == (1, 2, 3, 4)


def test_save_crop_writes_through_a_symlink(project, tmp_path):
    proj, _ = project
    shared = tmp_path / "lab_share" / "analysis_parameters.csv"
    shared.parent.mkdir()
    (proj / "analysis_parameters.csv").replace(shared)
    (proj / "analysis_parameters.csv").symlink_to(shared)
    save_crop_coords(proj, 97, (1, 2, 3, 4))
    assert (proj / "analysis_parameters.csv").is_symlink()
    assert b'"(1, 2, 3, 4)"' in shared.read_bytes()
    assert [p.name for p in shared.parent.iterdir()] == ["analysis_parameters.csv"]


def test_save_crop_refuses_a_read_only_file(project):
    import stat

    proj, _ = project
    path = proj / "analysis_parameters.csv"
    before = path.read_bytes()
    path.chmod(0o444)
    try:
        with pytest.raises(ProjectError, match="read-only.*not saved"):
            save_crop_coords(proj, 97, (1, 2, 3, 4))
        assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o444
    finally:
        path.chmod(0o644)


def test_killed_save_leaves_no_temporary_after_the_next_save(project):
    """A save killed before its rename leaves a temporary; the next save of the file removes it."""
    import subprocess
    import sys

    proj, _ = project
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from ace_neuro import storage

    host = storage._owner_tag().rsplit("-", 1)[0]
    left = proj / f".analysis_parameters.csv.tmp-{host}-{dead.pid}-0badf00d"
    left.write_text("half a file")
    save_crop_coords(proj, 97, (1, 2, 3, 4))
    assert [p.name for p in proj.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("spoil, message", [
    (lambda p: p.unlink(), r"experiments.csv: file not found. Check the project path"),
    (lambda p: (p.unlink(), p.mkdir()), r"experiments.csv: is a folder, not a CSV file"),
    (lambda p: p.write_bytes(EXPERIMENTS.encode().replace(b"saline", b"sal\x81ne")),
     r"experiments.csv: line 4: byte 0x81 is neither UTF-8 nor Windows-1252 text"),
    (lambda p: p.write_bytes(EXPERIMENTS.encode() + b'98,"R1,230903,sess\r\n'),
     r"experiments.csv: line 7: a quoted cell is never closed"),
])
def test_unreadable_experiments_file_is_a_project_error_naming_it(project, spoil, message):
    proj, data = project
    spoil(proj / "experiments.csv")
    with pytest.raises(ProjectError, match=message):
        Project.load(proj, data)
