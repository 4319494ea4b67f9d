"""Dagster sensors: new raw-data folders, new experiments.csv rows and changed parameters.

- ``experiment_lines``: new rows of experiments.csv -> partitions (running by default)
- ``new_raw_data``: a complete new session folder -> partition + one run of every asset
  (stopped by default; ``ACE_RAW_DATA_SENSOR=running`` or the UI's toggle starts it)
- ``parameters_changed``: a line's analysis_parameters.csv row changed -> its parameter
  snapshots are refreshed, so the affected stages show as stale (running by default)
"""
from .parameters_changed import build_parameters_changed_sensor
from .raw_data import build_experiment_lines_sensor, build_raw_data_sensor


def all_sensors():
    """Every sensor of the platform, configured from the environment (see :mod:`sensors.raw_data`)."""
    return [build_experiment_lines_sensor(), build_raw_data_sensor(), build_parameters_changed_sensor()]


__all__ = ["all_sensors", "build_experiment_lines_sensor", "build_parameters_changed_sensor", "build_raw_data_sensor"]
