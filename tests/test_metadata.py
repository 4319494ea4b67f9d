"""What the UI shows first: rounded findings, then figures, then one compact parameter table."""
import pandas as pd
import pytest

from ace_assets.cnmfe import rejection_summary
from ace_assets.metadata import parameter_table, params_metadata, quartiles, rounded
from ace_neuro.params import DetrendParams, DffParams, MotionParams


@pytest.mark.parametrize("x, want", [(0.004473893903195858, 0.00447), (123456.7, 123000.0), (0.0, 0.0),
                                     (-2.71828, -2.72), (1.0, 1.0)])
def test_rounded_keeps_three_significant_digits(x, want):
    assert rounded(x) == want


def test_quartiles_are_rounded_and_ignore_nan():
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")]) == "2 / 3 / 4"
    assert quartiles([]) == "-"


def test_parameter_table_names_the_csv_columns():
    table = parameter_table(MotionParams())
    assert table.splitlines()[0] == "| parameter | value |"
    assert "| max_shifts | 15, 15 |" in table and "| pw_rigid | TRUE |" in table
    several = parameter_table({"detrend": DetrendParams(), "dff": DffParams()})
    assert "| detrend | detrend_method | empty |" in several and "| dff | secs_window | 5 |" in several


def test_parameters_come_as_a_hash_then_one_table():
    meta = params_metadata(MotionParams(), "abc123")
    assert list(meta) == ["parameters_hash", "parameters"]


def test_rejections_are_counted_by_reason():
    table = pd.DataFrame({"accepted": [True, False, False, False],
                          "reason": ["passed", "snr 1.00 < min_SNR 2", "snr 1.1 < min_SNR 2; r_value 0.1 < rval_thr 0.8",
                                     "manual: rejected (automatic: passed)"]})
    text = rejection_summary(table)
    assert "- SNR below min_SNR: 1" in text
    assert "- SNR below min_SNR and r-value below rval_thr: 1" in text
    assert "- rejected by hand: 1" in text
