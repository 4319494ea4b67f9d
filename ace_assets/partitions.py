"""Experiment lines as dynamic partitions: the partition key is the ``line number`` as text."""
from __future__ import annotations

from dagster import DagsterInstance, DynamicPartitionsDefinition

from ace_neuro.project import Project

LINES_PARTITION = "experiment_lines"
lines_partitions = DynamicPartitionsDefinition(name=LINES_PARTITION)


def sync_line_partitions(instance: DagsterInstance, project: Project) -> list[str]:
    """Add every line of experiments.csv as a partition; returns the keys that were new."""
    existing = set(instance.get_dynamic_partitions(LINES_PARTITION))
    new = [str(k) for k in project.line_numbers if str(k) not in existing]
    if new:
        instance.add_dynamic_partitions(LINES_PARTITION, new)
    return new
