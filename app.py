#!/usr/bin/env python3
"""CDK entry point (`npx cdk synth`, `npx cdk deploy`). See README: Configuration."""

import os
import sys

# jsii prints a Node 20 end-of-life banner on every synth; the pinned toolchain
# is known to work on Node 20. Set before aws_cdk starts the jsii runtime.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.app import build_app
from infra.settings import SettingsError

try:
    app, _stack = build_app()
except SettingsError as error:
    sys.exit(f"autolabel: invalid CDK context: {error}")
app.synth()
