"""The lab's entry point to raw data: ``MiniscopeDataManager.create(line_num, project_path, data_path)``."""
from __future__ import annotations

import os
from typing import Sequence

from .project import Project
from .readers import MiniscopeReader, open_recording


class MiniscopeDataManager:
    """Kept for the lab's scripts: picks the reader for an experiment line."""

    @staticmethod
    def create(line_num: int, project_path: str | os.PathLike, data_path: str | os.PathLike | None = None,
               *, filenames: Sequence[str] | None = None) -> MiniscopeReader:
        """Return the reader for ``line_num`` (the ``line number`` column of experiments.csv).

        Raises :class:`~ace_neuro.project.ProjectError` for problems in the CSV files and
        :class:`~ace_neuro.readers.ReaderError` for problems in the raw folder.
        """
        project = Project.load(project_path, data_path)
        reader = open_recording(project.session_dir(line_num), filenames=filenames)
        reader.experiment = project.experiment(line_num)
        return reader
