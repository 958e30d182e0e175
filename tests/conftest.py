"""Shared fixtures: fake AWS credentials, moto, the synthesized stack's facts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from moto import mock_aws

# jsii (used by the CDK synth in the infra tests) prints a Node 20 EOL banner.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from labeler import handler
from local.poller import FakeLambdaContext
from local.stack_template import StackFacts, default_facts
from tests.support.harness import Harness


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never reach a real account: fake credentials, one region, no endpoint override."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(autouse=True)
def reset_handler() -> Iterator[None]:
    handler.use_pipeline(None)
    handler.metrics.clear_metrics()
    yield
    handler.use_pipeline(None)
    handler.metrics.clear_metrics()


@pytest.fixture(scope="session")
def stack_facts() -> StackFacts:
    """Facts of the synthesized stack (synthesized once per test session)."""
    return default_facts()


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def harness(stack_facts: StackFacts) -> Iterator[Harness]:
    with mock_aws():
        built = Harness(stack_facts)
        yield built
        # A fault on an operation the code no longer calls would make its test pass without the fault.
        unused = {
            name: client.unused_faults() for name, client in (("dynamodb", built.dynamodb), ("events", built.events))
        }
        assert not any(unused.values()), f"faults set on operations never called: {unused}"
