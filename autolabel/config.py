"""Where the command line finds AWS and the stack: global options, environment, stack outputs.

Clients come from one boto3 session (``--profile``, ``--region``,
``--endpoint-url``; otherwise the usual AWS environment and config files).
The region is ``--region``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``,
else the profile's, as the AWS CLI v2 chooses it (boto3 alone reads no
``AWS_REGION``).
The deployment's names come from the CloudFormation stack's outputs
(``--stack-name``, default ``$AUTOLABEL_STACK_NAME`` or ``Autolabel``), or,
with ``--deployment NAME``, from the SSM parameter an ``AutolabelPipeline``
in any stack writes (``/autolabel/deployments/NAME``, a JSON object with the
same keys as the outputs).
For an emulator without CloudFormation, ``AUTOLABEL_*`` environment variables
give the same values (:data:`OUTPUT_ENVIRONMENT`); each one set overrides its
output, unless ``--stack-name`` is given on the command line. The stack is
read only when a value is needed that no variable gives.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import ClientError, NoRegionError, ProfileNotFound

from autolabel.errors import CliError, ConfigurationError, ParameterError, ServiceError

DEFAULT_STACK_NAME = "Autolabel"
# Where AutolabelPipeline writes its names (autolabel/cdk/pipeline.py).
DEPLOYMENT_PARAMETER_PREFIX = "/autolabel/deployments/"
STACK_NAME_VARIABLE = "AUTOLABEL_STACK_NAME"
# Stack output id (infra/stack.py, autolabel/cdk/pipeline.py) -> the environment variable that stands in for it.
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
    "ModelRoutes": "AUTOLABEL_MODEL_ROUTES",  # several models: every lane, as JSON
}


def check_endpoint_url(url: str, source: str) -> None:
    """What botocore would refuse with a ValueError deep in client creation, said up front."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        parts, port_ok = urlsplit(""), False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ParameterError(
            f"{source} {url!r} is not a valid endpoint URL: it needs a scheme and a host, "
            "e.g. http://127.0.0.1:4566 or https://rekognition.us-east-1.amazonaws.com"
        )


# CloudFormation (CreateStack): "A stack name can contain only alphanumeric characters (case sensitive) and
# hyphens. It must start with an alphabetical character and can't be longer than 128 characters."
STACK_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9]{0,127}|arn:[^\s]+:cloudformation:[^\s]+")


def check_stack_name(name: str, source: str, error: type[CliError]) -> None:
    if not STACK_NAME.fullmatch(name):
        raise error(
            f"{source} {name!r} is not a stack name (letters, digits and hyphens, starting with a letter, "
            "at most 128) nor a stack ARN"
        )


# An output only the local emulator's stack has (local/run.py): what it cannot do is said up front.
EMULATOR_OUTPUT = "EmulatedBy"


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
        deployment: str | None = None,
        environ: Mapping[str, str] | None = None,
        client_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.deployment = deployment
        self._stack_name_argument = stack_name
        self.environ = os.environ if environ is None else environ
        if endpoint_url is not None:
            check_endpoint_url(endpoint_url, "--endpoint-url")
        # As the AWS CLI v2 and the SDKs: AWS_REGION wins over AWS_DEFAULT_REGION and the profile's region.
        self.region = region or self.environ.get("AWS_REGION") or None
        self.profile = profile
        self.endpoint_url = endpoint_url
        self.stack_name_given = stack_name is not None or deployment is not None
        self.stack_name = stack_name or self.environ.get(STACK_NAME_VARIABLE) or DEFAULT_STACK_NAME
        if stack_name is not None:
            check_stack_name(stack_name, "--stack-name", ParameterError)
        else:
            check_stack_name(self.stack_name, STACK_NAME_VARIABLE, ConfigurationError)
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
                except ValueError as error:  # botocore: "Invalid endpoint: ..." from AWS_ENDPOINT_URL* or config
                    raise ConfigurationError(
                        f"{error} (from AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_{service.upper()} or your profile's "
                        "endpoint_url): it needs a scheme and a host, e.g. http://127.0.0.1:4566"
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
        if self.deployment is not None:
            raise ConfigurationError(f"deployment {self.deployment!r} has no {key}")
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
        if self._outputs is None and self.deployment is not None:
            if self._stack_name_argument is not None:
                raise ConfigurationError("give --stack-name or --deployment, not both")
            self._outputs = self._deployment_parameter(self.deployment)
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

    def refuse_in_emulator(self, what: str, needs: tuple[str, ...]) -> None:
        """A ConfigurationError naming what the local emulator cannot do, when the stack is the emulator's.

        Called before the command reads the outputs it ``needs`` (one it lacks would be a worse message).
        When AUTOLABEL_* variables give all of them, the stack is not read: they configure another emulator.
        """
        if not self.stack_name_given and all(self.environ.get(OUTPUT_ENVIRONMENT.get(k, "")) for k in needs):
            return
        emulator = self.optional_output(EMULATOR_OUTPUT)
        if emulator:
            raise ConfigurationError(f"the local emulator ({emulator}) {what}")

    def _deployment_parameter(self, name: str) -> dict[str, str]:
        parameter = DEPLOYMENT_PARAMETER_PREFIX + name
        try:
            value = self.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
        except ClientError as error:
            details = error.response.get("Error", {})
            if details.get("Code") == "ParameterNotFound":
                raise StackNotFound(
                    f"no deployment {name!r} in {self.region_name()}: SSM parameter {parameter} not found "
                    "(deploy the stack holding the AutolabelPipeline, or check --deployment/--region)"
                ) from None
            raise ServiceError(
                f"could not read SSM parameter {parameter}: {details.get('Code')}: {details.get('Message')}"
            ) from None
        try:
            names = json.loads(value)
        except ValueError:
            names = None
        if not isinstance(names, dict):
            raise ConfigurationError(f"SSM parameter {parameter} is not the JSON object an AutolabelPipeline writes")
        return {str(key): str(item) for key, item in names.items()}

    def region_name(self) -> str:
        if self.region:
            return self.region
        if self._client_factory is None:
            return str(self.session.region_name or "(no region)")
        return "(injected clients)"
