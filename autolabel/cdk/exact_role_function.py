"""A Python Lambda with its own log group and a role holding exactly the given grants.

A function, not a construct, so the callers' resources keep their ids
(``<Scope>Logs``, ``<Scope>Role``, ``<Scope>Function``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from autolabel.cdk.bundling import functions_code
from autolabel.cdk.runtime import RUNTIME


@dataclass(frozen=True)
class Grant:
    """An explicit statement: for what no L2 helper grants this narrowly."""

    sid: str
    actions: Sequence[str]
    resource: str | Sequence[str]  # one resource, or several exact ones (one statement either way)

    @property
    def resources(self) -> list[str]:
        return [self.resource] if isinstance(self.resource, str) else list(self.resource)


# An L2 helper granting exact actions on one resource, e.g. ``bus.grant_put_events_to``.
L2Grant = Callable[[iam.IGrantable], iam.Grant]


@dataclass(frozen=True)
class ExactRoleFunction:
    function: lambda_.Function
    role: iam.Role
    log_group: logs.LogGroup


def exact_role_function(
    scope: Construct,
    *,
    description: str,
    role_description: str,
    handler: str,
    grants: Sequence[Grant],
    l2_grants: Sequence[L2Grant] = (),
    environment: Mapping[str, str],
    memory_size: int,
    timeout: Duration,
    reserved_concurrent_executions: int | None = None,
) -> ExactRoleFunction:
    log_group = logs.LogGroup(
        scope, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
    )
    role = iam.Role(
        scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=role_description
    )
    for grant in [
        Grant("WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], log_group.log_group_arn),
        *grants,
    ]:
        role.add_to_policy(iam.PolicyStatement(sid=grant.sid, actions=list(grant.actions), resources=grant.resources))
    for l2_grant in l2_grants:
        l2_grant(role)
    function = lambda_.Function(
        scope,
        "Function",
        description=description,
        runtime=RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        handler=handler,
        code=functions_code(),  # one asset: both functions and their shared kit
        role=role,
        memory_size=memory_size,
        timeout=timeout,
        reserved_concurrent_executions=reserved_concurrent_executions,
        environment=dict(environment),
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
    )
    return ExactRoleFunction(function, role, log_group)
