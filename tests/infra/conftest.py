"""Synthesized stacks for the infra tests (each synthesized once per module)."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template

from infra.app import build_app
from local.stack_template import PLACEHOLDER_CONTEXT, PLACEHOLDER_PROJECT_ARN, PLACEHOLDER_PROJECT_VERSION_ARN

ARN = PLACEHOLDER_PROJECT_VERSION_ARN
PROJECT_ARN = PLACEHOLDER_PROJECT_ARN


def synth(**context: Any) -> tuple[Any, Template]:
    """(stack, template); bundling skipped (tests/infra/test_bundle.py covers the asset)."""
    _app, stack = build_app({**PLACEHOLDER_CONTEXT, "aws:cdk:bundling-stacks": [], **context})
    return stack, Template.from_stack(stack)
