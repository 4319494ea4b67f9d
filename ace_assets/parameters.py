"""Parameter snapshots: each stage's typed parameters for a line, as assets with a data version.

Every stage reads its parameters from its snapshot asset, not from the CSV directly. The
snapshot's data version is the hash of the values, so when a line's row of
analysis_parameters.csv changes and the snapshots are re-materialised (the
``parameters_changed`` sensor does it), exactly the stages whose parameters changed -
and everything downstream of them - show as stale in the UI. A parameter that did not
change keeps its data version, so nothing downstream of it is marked.
"""
from dagster import AssetExecutionContext, AssetOut, DataVersion, Output, multi_asset

from ace_neuro.params import PIPELINE_FIELDS, params_hash
from resources import ProjectResource
from resources.failures import reports_failures

from .metadata import params_metadata
from .partitions import lines_partitions

#: snapshot asset name (``<stage>_parameters``) -> field of PipelineParams, one per declared stage
PARAMETER_ASSETS = {f"{cls.STAGE}_parameters": field for field, cls in PIPELINE_FIELDS.items()}


@multi_asset(
    partitions_def=lines_partitions,
    outs={name: AssetOut(io_manager_key="json_io", group_name="parameters", kinds={"json"},
                         description=f"Typed '{field}' parameters of this line (defaults < CSV < overrides).")
          for name, field in PARAMETER_ASSETS.items()},
)
@reports_failures
def line_parameters(context: AssetExecutionContext, project: ProjectResource):
    params = project.params(context.partition_key)
    for name, field in PARAMETER_ASSETS.items():
        value = getattr(params, field)
        digest = params_hash(value)
        yield Output(value, output_name=name, data_version=DataVersion(digest),
                     metadata=params_metadata(value, digest))
