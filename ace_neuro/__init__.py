"""ace_neuro: miniscope calcium-imaging analysis (the science; no Dagster here)."""
__version__ = "0.1.0"
