"""Builds the repository's CDK app; shared by app.py, the tests and the local run.

The app, not the construct, checks its context keys and applies cdk-nag to
everything it synthesizes (nag-on-synth).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Aspects
from cdk_nag import AwsSolutionsChecks

from autolabel.cdk import PipelineError
from infra.settings import SettingsError, StackSettings, check_context_keys
from infra.stack import AutolabelStack

STACK_NAME = "Autolabel"


def build_app(context: Mapping[str, Any] | None = None, *, outdir: str | None = None) -> tuple[App, AutolabelStack]:
    app = App(context=dict(context or {}), outdir=outdir)
    check_context_keys(app.node.get_all_context())  # -c and cdk.json keys: a typo fails with a suggestion
    settings = StackSettings.from_context(app.node.try_get_context)
    # Environment-agnostic on purpose: no account/region lookups at synth.
    try:
        stack = AutolabelStack(
            app, STACK_NAME, settings=settings, description="autolabel: S3 images labeled by Rekognition Custom Labels"
        )
    except PipelineError as error:  # a combination of keys the construct refuses: the same one line
        raise SettingsError(str(error)) from None
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app, stack
