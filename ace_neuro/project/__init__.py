"""The lab's project folder: experiments.csv and analysis_parameters.csv."""
from .cells import parse_cell
from .tables import Experiment, Project, ProjectError, curation_file, save_crop_coords

__all__ = ["Experiment", "Project", "ProjectError", "curation_file", "parse_cell", "save_crop_coords"]
