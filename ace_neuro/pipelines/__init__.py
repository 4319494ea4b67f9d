"""Entry points of the lab's front ends (command line and Python API), which live in :mod:`ace_assets`.

``python -m ace_neuro.pipelines.miniscope --line-num 96 --project-path P`` or
``from ace_neuro.pipelines.miniscope import MiniscopePipeline``. Importing this package
does not import Dagster; using one of its names does.
"""
