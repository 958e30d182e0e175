"""The autolabel construct library: ``pip install "autolabel[cdk]"``, then

    from autolabel.cdk import AutolabelPipeline, ModelRoute

See the README, "Use it in your own CDK app".
"""

from autolabel.cdk.pipeline import AutolabelPipeline, deployment_parameter_name
from autolabel.cdk.settings import ModelManagerSettings, ModelRoute, PipelineError

__all__ = ["AutolabelPipeline", "ModelManagerSettings", "ModelRoute", "PipelineError", "deployment_parameter_name"]
