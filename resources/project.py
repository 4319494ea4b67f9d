"""The project resource: where the lab's CSV files, raw data and outputs live."""
from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from ace_neuro.params import PipelineParams
from ace_neuro.project import Project


class ProjectResource(ConfigurableResource):
    """The lab's project folder (experiments.csv, analysis_parameters.csv) and raw data root.

    Configure with environment variables ``ACE_PROJECT_PATH`` and ``ACE_DATA_PATH``
    (see the README) or directly in code. The CSV files are read once per run (and again
    only when one of them changes on disk), so their warnings are said once.
    """

    project_path: str
    data_path: str = ""
    #: explicit parameter overrides (name -> value) that win over the CSV, e.g. from the CLI
    overrides: dict = {}
    _loaded: tuple | None = PrivateAttr(default=None)
    _params: dict = PrivateAttr(default_factory=dict)

    def _stamp(self) -> tuple:
        out = []
        for name in ("experiments.csv", "analysis_parameters.csv"):
            try:
                st = (Path(self.project_path) / name).stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def load(self) -> Project:
        stamp = self._stamp()
        if self._loaded is None or self._loaded[0] != stamp:
            self._loaded = (stamp, Project.load(self.project_path, self.data_path or None))
            self._params.clear()
        return self._loaded[1]

    def params(self, line_num: int | str) -> PipelineParams:
        project = self.load()
        line = int(line_num)
        if line not in self._params:
            self._params[line] = project.params(line, overrides=self.overrides or None)
        return self._params[line]


def env_project_resource() -> ProjectResource:
    return ProjectResource(project_path=os.environ.get("ACE_PROJECT_PATH", "project"),
                           data_path=os.environ.get("ACE_DATA_PATH", ""))
