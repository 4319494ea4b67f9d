"""The Dagster layer: assets, checks and the lab's front end (CLI, API) wired onto :mod:`ace_neuro`."""
import warnings

from dagster import BetaWarning, PreviewWarning

# Partitioned asset checks and pools are Dagster features in beta/preview that this platform uses on
# purpose; their warnings speak to whoever chose them, not to a scientist running the pipeline.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
