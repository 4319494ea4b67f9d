"""The project resource: where the lab's CSV files, raw data and outputs live."""
from __future__ import annotations

import os

from dagster import ConfigurableResource

from ace_neuro.params import PipelineParams
from ace_neuro.project import Project


class ProjectResource(ConfigurableResource):
    """The lab's project folder (experiments.csv, analysis_parameters.csv) and raw data root.

    Configure with environment variables ``ACE_PROJECT_PATH`` and ``ACE_DATA_PATH``
    (see the README) or directly in code.
    """

    project_path: str
    data_path: str = ""
    #: explicit parameter overrides (name -> value) that win over the CSV, e.g. from the CLI
    overrides: dict = {}

    def load(self) -> Project:
        return Project.load(self.project_path, self.data_path or None)

    def params(self, line_num: int | str) -> PipelineParams:
        return self.load().params(int(line_num), overrides=self.overrides or None)


def env_project_resource() -> ProjectResource:
    return ProjectResource(project_path=os.environ.get("ACE_PROJECT_PATH", "project"),
                           data_path=os.environ.get("ACE_DATA_PATH", ""))
