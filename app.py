#!/usr/bin/env python3
"""CDK entry point (`npx cdk synth`, `npx cdk deploy`). See README: Configuration."""

import sys

from infra.app import build_app
from infra.settings import SettingsError

try:
    app, _stack = build_app()
except SettingsError as error:
    sys.exit(f"autolabel: invalid CDK context: {error}")
app.synth()
