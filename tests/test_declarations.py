"""Each parameter is declared once; everything else (names, parsing, snapshots, CLI, README) follows from it.
And every error the platform raises belongs to one category that the front ends route by."""
import dataclasses
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ace_neuro
from ace_neuro import errors
from ace_neuro.params import (KNOWN_PARAMETERS, PIPELINE_FIELDS, STAGE_TYPES, CnmfeParams, MotionParams,
                              ParameterError, ParameterLayer, PipelineParams, all_declarations,
                              build_pipeline_params, declarations)
from ace_neuro.params.table import (README_END, README_START, STAGE_GUIDES, readme_section, stage_section,
                                    with_tables, write_tables)

REPO = Path(__file__).resolve().parents[1]


def test_every_field_of_every_stage_is_declared_with_help_and_a_valid_default():
    for cls in STAGE_TYPES:
        declared = {d.field for d in declarations(cls)}
        assert declared == {f.name for f in dataclasses.fields(cls)}, cls
        for d in declarations(cls):
            assert d.help and d.csv, d
            cls()  # the defaults pass their own declarations


def test_csv_names_are_declared_once_except_the_one_shared_by_two_stages():
    seen: dict[str, list[str]] = {}
    for d in all_declarations():
        for name in d.csv:
            seen.setdefault(name, []).append(f"{d.stage}.{d.field}")
    shared = {n: where for n, where in seen.items() if len(where) > 1}
    # crop/crop_coords: one cell, switch or box; use_suggested_params: read by motion and CNMF-E
    assert shared == {"crop": ["crop.enabled", "crop.coords"], "crop_coords": ["crop.enabled", "crop.coords"],
                      "use_suggested_params": ["motion.use_suggested", "cnmfe.use_suggested"]}
    assert KNOWN_PARAMETERS == set(seen)


def test_pipeline_params_hold_every_stage_once():
    assert [cls for cls in PIPELINE_FIELDS.values()] == list(STAGE_TYPES)
    assert PipelineParams().engine.name == "native"


def test_a_dataclass_built_by_hand_is_validated_and_normalised():
    with pytest.raises(ParameterError, match="min_corr") as info:
        CnmfeParams(min_corr=2.0)
    assert info.value.parameter == "min_corr" and info.value.category == "parameters"
    assert MotionParams(max_shifts=[5, 6]).max_shifts == (5, 6)  # a list from a notebook becomes the tuple
    with pytest.raises(ParameterError, match="stride"):
        dataclasses.replace(CnmfeParams(), rf=10, stride=40)  # replace() validates too


def test_later_layers_win_and_errors_name_their_layer():
    csv = ParameterLayer({"gSig": (3, 3), "min_corr": 0.8, "crop_coords": (1, 20, 30, 2)}, "p.csv, row 4",
                         file="p.csv", row=4)
    args = ParameterLayer({"min_corr": 0.9, "crop": False}, "the arguments given")
    params, notes = build_pipeline_params([csv, args])
    assert params.cnmfe.min_corr == 0.9 and params.cnmfe.gSiz == (13, 13) and "gSiz not set" in notes[0]
    assert params.crop.enabled is False and params.crop.coords == (1, 20, 30, 2)  # --no-crop wins over the CSV
    with pytest.raises(ParameterError, match=r"from p.csv, row 4") as info:
        build_pipeline_params([ParameterLayer({"p": 3}, "p.csv, row 4", file="p.csv", row=4), args])
    assert (info.value.file, info.value.row, info.value.parameter) == ("p.csv", 4, "p")
    with pytest.raises(ParameterError, match="from the arguments given"):
        build_pipeline_params([csv, ParameterLayer({"cut": (2.0, 1.0)}, "the arguments given")])


def test_the_readme_table_is_the_one_the_declarations_write():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(README_START), readme.index(README_END) + len(README_END)
    assert readme[start:end] == readme_section(), "run `python -m ace_neuro.params --write`"
    for name in KNOWN_PARAMETERS:
        assert f"`{name}`" in readme


def test_every_stage_has_a_guide_whose_table_the_declarations_write():
    for cls in STAGE_TYPES:
        page = REPO / "docs" / STAGE_GUIDES[cls.STAGE]
        text = page.read_text(encoding="utf-8")
        assert stage_section(cls.STAGE) in text, f"{page.name}: run `python -m ace_neuro.params --write`"
        assert with_tables(text) == text


def test_write_tables_rewrites_only_the_generated_sections(tmp_path):
    (tmp_path / "docs").mkdir()
    guide = tmp_path / "docs" / "motion.md"
    guide.write_text("# Motion\n\nprose\n<!-- parameters: motion -->\nstale\n<!-- /parameters: motion -->\nmore\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\nend\n")
    assert set(write_tables(tmp_path)) == {guide, readme}
    assert guide.read_text() == f"# Motion\n\nprose\n{stage_section('motion')}\nmore\n"
    assert readme.read_text() == f"intro\n{readme_section()}\nend\n"
    assert write_tables(tmp_path) == []  # nothing left to change


def test_the_cli_lists_every_parameter():
    out = subprocess.run([sys.executable, "-m", "ace_neuro.pipelines.miniscope", "--list-parameters"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = set(re.findall(r"^  (\w+) +default", out.stdout, re.M))
    assert listed == {d.name for d in all_declarations()}


def test_run_takes_every_parameter_by_name_and_documents_it():
    from ace_assets.pipeline import MiniscopePipeline

    doc = MiniscopePipeline.run.__doc__
    for d in all_declarations():
        assert f"        {d.name} (" in doc
    sig = inspect.signature(MiniscopePipeline.run)
    assert any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    assert not set(sig.parameters) & KNOWN_PARAMETERS  # no parameter is spelled out a second time


# --------------------------------------------------------------------------- error categories
def _platform_error_classes():
    for info in pkgutil.walk_packages(ace_neuro.__path__, "ace_neuro."):
        if info.name.endswith("__main__"):
            continue
        if ".interactive." in info.name and "window" in info.name:
            continue  # the windows import matplotlib's GUI machinery lazily; their errors are checked below
        module = __import__(info.name, fromlist=["_"])
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__ == module.__name__:
                yield obj


def test_every_error_the_library_defines_has_a_category():
    uncategorised = [f"{c.__module__}.{c.__name__}" for c in _platform_error_classes()
                     if not issubclass(c, errors.AceError) and c.__name__ not in ("Invalid",)]
    assert uncategorised == [], "give these a category base from ace_neuro.errors"
    for cls in _platform_error_classes():
        if issubclass(cls, errors.AceError) and cls is not errors.AceError:
            assert cls.category in errors.CATEGORIES and cls.default_fix, cls


def test_stage_errors_for_parameter_values_are_parameter_errors():
    from ace_neuro.stages.crop import CropError
    from ace_neuro.stages.cnmfe import CnmfeParameterError
    from ace_neuro.stages.motion import MotionCorrectionError, MotionParameterError
    from ace_neuro.stages.phase import PhaseError, PhaseParameterError
    from ace_neuro.stages.spectrogram import SpectrogramParameterError

    for cls in (CropError, CnmfeParameterError, MotionParameterError, PhaseParameterError, SpectrogramParameterError):
        assert issubclass(cls, ParameterError) and cls.category == "parameters", cls
    assert issubclass(MotionParameterError, MotionCorrectionError) and issubclass(PhaseParameterError, PhaseError)


def test_describe_routes_os_errors_and_bugs():
    import errno

    full = errors.describe(OSError(errno.ENOSPC, "No space left on device", "/data/x.zarr"))
    assert full.category == "environment" and "disk is full" in full.fix and full.file == "/data/x.zarr"
    assert errors.describe(PermissionError(errno.EACCES, "denied")).category == "environment"
    assert errors.describe(KeyError("x")).category == "internal"
    report = errors.describe(ParameterError("bad", file="p.csv", row=3, parameter="gSig"))
    assert errors.ErrorReport.from_metadata(report.as_metadata(), "bad") == report
