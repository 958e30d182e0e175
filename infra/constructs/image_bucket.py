"""The bucket users drop images into (created, or an existing one by name)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

# Server access logs are delivered under a bucket policy for the S3 logging service (ACLs stay
# disabled), as the S3 User Guide recommends; set on this construct so that it holds whatever
# the host app's cdk.json says.
ACCESS_LOGS_BY_BUCKET_POLICY = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"


def _secure_bucket(scope: Construct, construct_id: str, **options: Any) -> s3.Bucket:
    """A bucket with the options every bucket of the stack has: private, encrypted, TLS only, retained."""
    return s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        removal_policy=RemovalPolicy.RETAIN,
        **options,
    )


class ImageBucket(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, existing_bucket_name: str | None, event_bridge: bool = False
    ) -> None:
        super().__init__(scope, construct_id)
        self.node.set_context(ACCESS_LOGS_BY_BUCKET_POLICY, True)
        self.created = existing_bucket_name is None
        if existing_bucket_name is not None:
            # Its policies and encryption are its owner's; we only add a notification
            # (with notifications=eventbridge, not even that: its owner turns EventBridge on).
            self.bucket: s3.IBucket = s3.Bucket.from_bucket_name(self, "Images", existing_bucket_name)
            return
        self.access_logs = _secure_bucket(
            self,
            "AccessLogs",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
        )
        self.bucket = _secure_bucket(
            self,
            "Images",
            # Versioned: notifications carry the versionId, so the labeled bytes
            # are exactly the uploaded bytes even if the key is overwritten.
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="images/",
            # notifications=eventbridge: S3 sends its events to the default bus.
            event_bridge_enabled=event_bridge or None,
        )
