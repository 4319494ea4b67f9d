"""Dagster resources: storage IO managers and the lab's project folder."""
from .figures import FigureStore
from .io_managers import HtmlIOManager, JsonIOManager, ParquetIOManager, ZarrIOManager, default_storage_root
from .project import ProjectResource, env_project_resource

__all__ = ["FigureStore", "HtmlIOManager", "JsonIOManager", "ParquetIOManager", "ProjectResource", "ZarrIOManager", "default_storage_root", "env_project_resource"]
