"""cdk-nag AwsSolutions findings we acknowledge, each with its reason.

Every suppression is scoped to one resource and, where the rule is granular,
to the exact finding (``applies_to``), so a new wildcard still fails synth.
"""

from __future__ import annotations

from aws_cdk import Stack
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo

from infra.runtime import RUNTIME

# The S3 bucket-notifications custom resource is a CDK singleton whose role we
# do not create (its construct id is fixed by aws-cdk-lib).
NOTIFICATIONS_HANDLER_PREFIX = "BucketNotificationsHandler"


def acknowledge_findings(stack: Stack) -> None:
    NagSuppressions.add_resource_suppressions(
        stack.labeler.role,  # type: ignore[attr-defined]
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason=(
                    "Rekognition reads each uploaded image with the labeler's credentials, and the "
                    "images are not known in advance: s3:GetObject/GetObjectVersion is granted on the "
                    "objects under the configured key prefix of the one image bucket, nothing else."
                ),
                applies_to=[
                    RegexAppliesTo(
                        regex=r"/^Resource::(<ImageBucketImages[0-9A-F]+\.Arn>|arn:<AWS::Partition>:s3:::[a-z0-9.-]+)\/.*\*$/"
                    )
                ],
            )
        ],
        apply_to_children=True,
    )
    manager = stack.model_manager  # type: ignore[attr-defined]
    runtime_reason = NagPackSuppression(
        id="AwsSolutions-L1",
        reason=(
            f"The functions run {RUNTIME.name}, the Python the project builds, tests and type-checks with "
            "(.python-version), so the deployed code is the tested code and its shipped bytecode is used. "
            "It is a supported Lambda runtime; move the pin when the toolchain moves."
        ),
    )
    for function in (stack.labeler.function, manager.function if manager is not None else None):  # type: ignore[attr-defined]
        if function is not None:
            NagSuppressions.add_resource_suppressions(function, [runtime_reason])
    if manager is not None and stack.settings.project_arn is None:  # type: ignore[attr-defined]
        project = stack.settings.project_version_arn.split("/version/", 1)[0]  # type: ignore[attr-defined]
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
                    applies_to=["Resource::*", f"Resource::{project}/*"],
                )
            ],
            apply_to_children=True,
        )
    for child in stack.node.children:
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
