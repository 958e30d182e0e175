"""cdk-nag AwsSolutions findings we acknowledge, each with its reason.

Every suppression is scoped to one resource of the pipeline and, where the
rule is granular, to the exact finding (``applies_to``), so a new wildcard
still fails. The one resource outside the pipeline is aws-cdk-lib's
bucket-notifications handler, a singleton of the stack that exists because
the pipeline adds a notification to the bucket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Stack
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo

from autolabel.cdk._functions import model_arn
from autolabel.cdk.runtime import RUNTIME

if TYPE_CHECKING:
    from autolabel.cdk.pipeline import AutolabelPipeline

# The S3 bucket-notifications custom resource is a CDK singleton whose role we
# do not create (its construct id is fixed by aws-cdk-lib).
NOTIFICATIONS_HANDLER_PREFIX = "BucketNotificationsHandler"


def acknowledge_findings(pipeline: AutolabelPipeline) -> None:
    NagSuppressions.add_resource_suppressions(
        pipeline.labeler.role,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason=(
                    "Rekognition reads each uploaded image with the labeler's credentials, and the "
                    "images are not known in advance: s3:GetObject/GetObjectVersion is granted on the "
                    "objects under the configured key prefix of each source bucket, nothing else."
                ),
                applies_to=[
                    RegexAppliesTo(
                        regex=r"/^Resource::(<[A-Za-z0-9]+\.Arn>|arn:<AWS::Partition>:s3:::[a-z0-9.-]+)\/.*\*$/"
                    )
                ],
            )
        ],
        apply_to_children=True,
    )
    manager = pipeline.model_manager
    runtime_reason = NagPackSuppression(
        id="AwsSolutions-L1",
        reason=(
            f"The functions run {RUNTIME.name}, the Python the project builds, tests and type-checks with "
            "(.python-version), so the deployed code is the tested code and its shipped bytecode is used. "
            "It is a supported Lambda runtime; move the pin when the toolchain moves."
        ),
    )
    for function in (pipeline.labeler.function, manager.function if manager is not None else None):
        if function is not None:
            NagSuppressions.add_resource_suppressions(function, [runtime_reason])
    unnamed = [route for route in pipeline.settings.routes if route.project_arn is None]
    if manager is not None and unnamed:
        projects = [f"Resource::{model_arn.project_prefix(route.project_version_arn)}/*" for route in unnamed]
        NagSuppressions.add_resource_suppressions(
            manager.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "Without -c projectArn the manager finds its project's ARN once with "
                        "rekognition:DescribeProjects, which supports no resource-level permissions, and "
                        "describes versions of that one project, whose ARN ends in a creation time not "
                        "known at synth (project/<name>/*). Pass projectArn to remove both wildcards."
                    ),
                    applies_to=["Resource::*", *projects],
                )
            ],
            apply_to_children=True,
        )
    for child in Stack.of(pipeline).node.children:
        if child.node.id.startswith(NOTIFICATIONS_HANDLER_PREFIX):
            NagSuppressions.add_resource_suppressions(
                child,
                [
                    NagPackSuppression(
                        id="AwsSolutions-IAM4",
                        reason=(
                            "aws-cdk-lib's S3 bucket-notifications handler (a deploy-time custom resource, "
                            "not our code) uses AWSLambdaBasicExecutionRole for its own logs; its only "
                            "other permission is s3:PutBucketNotification on the image bucket."
                        ),
                        applies_to=[
                            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
                        ],
                    )
                ],
                apply_to_children=True,
            )
