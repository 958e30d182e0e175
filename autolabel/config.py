"""Where the command line finds AWS and the stack: global options, environment, stack outputs.

Clients come from one boto3 session (``--profile``, ``--region``,
``--endpoint-url``; otherwise the usual AWS environment and config files).
The deployment's names come from the CloudFormation stack's outputs
(``--stack-name``, default ``$AUTOLABEL_STACK_NAME`` or ``Autolabel``).
For an emulator without CloudFormation, ``AUTOLABEL_*`` environment variables
give the same values (:data:`OUTPUT_ENVIRONMENT`); each one set overrides its
output, unless ``--stack-name`` is given on the command line. The stack is
read only when a value is needed that no variable gives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError, NoRegionError, ProfileNotFound

from autolabel.errors import ConfigurationError, ServiceError

DEFAULT_STACK_NAME = "Autolabel"
STACK_NAME_VARIABLE = "AUTOLABEL_STACK_NAME"
# Stack output id (infra/stack.py) -> the environment variable that stands in for it.
OUTPUT_ENVIRONMENT = {
    "ResultsTableName": "AUTOLABEL_TABLE",
    "ImageBucketName": "AUTOLABEL_BUCKET",
    "IngestQueueUrl": "AUTOLABEL_QUEUE_URL",
    "DeadLetterQueueUrl": "AUTOLABEL_DLQ_URL",
    "ProjectVersionArn": "AUTOLABEL_PROJECT_VERSION_ARN",
    "ProjectArn": "AUTOLABEL_PROJECT_ARN",
    "EventSourceMappingId": "AUTOLABEL_EVENT_SOURCE_MAPPING_ID",
    "ModelManagerFunctionName": "AUTOLABEL_MODEL_MANAGER_FUNCTION",
    "BackfillQueueUrl": "AUTOLABEL_BACKFILL_QUEUE_URL",
    "BackfillDeadLetterQueueUrl": "AUTOLABEL_BACKFILL_DLQ_URL",
    "BackfillJobStateMachineArn": "AUTOLABEL_BACKFILL_JOB_ARN",
    "BackfillReportBucketName": "AUTOLABEL_BACKFILL_REPORT_BUCKET",
}


class StackNotFound(ConfigurationError):
    """The stack does not exist (in this region/account)."""


class AwsContext:
    """Lazily creates clients and reads the stack's outputs (at most one DescribeStacks)."""

    def __init__(
        self,
        *,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        stack_name: str | None = None,
        environ: Mapping[str, str] | None = None,
        client_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.region = region
        self.profile = profile
        self.endpoint_url = endpoint_url
        self.stack_name_given = stack_name is not None
        self.stack_name = stack_name or self.environ.get(STACK_NAME_VARIABLE) or DEFAULT_STACK_NAME
        self._client_factory = client_factory
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}
        self._outputs: dict[str, str] | None = None
        self._stack_missing = False

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            try:
                self._session = boto3.Session(profile_name=self.profile, region_name=self.region)
            except ProfileNotFound as error:
                raise ConfigurationError(
                    f"{error}: check --profile / AWS_PROFILE (`aws configure list-profiles`)"
                ) from None
        return self._session

    def client(self, service: str) -> Any:
        if service not in self._clients:
            if self._client_factory is not None:
                self._clients[service] = self._client_factory(service)
            else:
                try:
                    self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
                except NoRegionError:
                    raise ConfigurationError(
                        "no AWS region: pass --region, set AWS_REGION, or set a region in your profile"
                    ) from None
        return self._clients[service]

    def output(self, key: str) -> str:
        """A stack output (or its AUTOLABEL_* stand-in); a ConfigurationError when there is none."""
        value = self.optional_output(key)
        if value:
            return value
        variable = OUTPUT_ENVIRONMENT.get(key, "")
        if self._stack_missing:
            raise ConfigurationError(
                f"{variable} is not set, and there is no stack {self.stack_name!r} to read it from"
            )
        raise ConfigurationError(
            f"stack {self.stack_name!r} has no {key} output"
            + (f" (and {variable} is not set)" if variable and not self.stack_name_given else "")
        )

    def optional_output(self, key: str) -> str | None:
        """The AUTOLABEL_* variable when set (and no --stack-name), else the stack's output (read once).

        When AUTOLABEL_* variables configure an emulator without CloudFormation,
        an output they do not give is absent rather than an error.
        """
        variable = OUTPUT_ENVIRONMENT.get(key)
        if variable and not self.stack_name_given and self.environ.get(variable):
            return self.environ[variable]
        try:
            return self._stack_outputs().get(key) or None
        except StackNotFound:
            if self.stack_name_given or not any(self.environ.get(v) for v in OUTPUT_ENVIRONMENT.values()):
                raise
            self._stack_missing = True
            return None

    def _stack_outputs(self) -> dict[str, str]:
        if self._outputs is None:
            try:
                stacks = self.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"]
            except ClientError as error:
                details = error.response.get("Error", {})
                if details.get("Code") == "ValidationError" and "does not exist" in str(details.get("Message")):
                    raise StackNotFound(
                        f"stack {self.stack_name!r} not found in {self.region_name()}: deploy it (`npx cdk deploy`), "
                        "pass --stack-name/--region, or set AUTOLABEL_TABLE etc. for an emulator"
                    ) from None
                raise ServiceError(
                    f"could not read stack {self.stack_name!r}: {details.get('Code')}: {details.get('Message')}"
                ) from None
            outputs = stacks[0].get("Outputs", []) if stacks else []
            self._outputs = {o["OutputKey"]: o["OutputValue"] for o in outputs}
        return self._outputs

    def region_name(self) -> str:
        if self.region:
            return self.region
        if self._client_factory is None:
            return str(self.session.region_name or "(no region)")
        return "(injected clients)"
