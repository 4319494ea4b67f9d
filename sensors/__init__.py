"""Dagster sensors: new raw-data folders and new experiments.csv rows -> partitions and runs."""
from .raw_data import build_experiment_lines_sensor, build_raw_data_sensor


def all_sensors():
    """Every sensor of the platform, configured from the environment (see :mod:`sensors.raw_data`)."""
    return [build_experiment_lines_sensor(), build_raw_data_sensor()]


__all__ = ["all_sensors", "build_experiment_lines_sensor", "build_raw_data_sensor"]
