"""The lab's front ends (command line and Python API) over the Dagster asset graph.

``python -m ace_neuro.pipelines.miniscope --line-num 96 --project-path P`` or
``from ace_neuro.pipelines.miniscope import MiniscopePipeline``. Importing this package
does not import Dagster; :meth:`MiniscopePipeline.run` does, when called.
"""
