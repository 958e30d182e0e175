"""The command line's fixtures (tests/support/cli.py)."""

from tests.support.cli import cli, no_autolabel_environment

__all__ = ["cli", "no_autolabel_environment"]
