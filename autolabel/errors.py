"""Failures the command line reports as one line and an exit code (the AWS CLI's codes)."""

from __future__ import annotations

# AWS CLI return codes (`aws help return-codes`).
EXIT_OK = 0
EXIT_NOT_FOUND = 1  # the query ran and found nothing (show / render of an unlabeled object)
EXIT_BAD_PARAMETERS = 252  # invalid syntax, unknown parameter or a value refused before any call
EXIT_CONFIGURATION = 253  # region, credentials, profile, stack or its outputs missing/invalid
EXIT_SERVICE = 254  # the request was made and the service returned an error
EXIT_OTHER = 255  # anything else (e.g. the endpoint could not be reached, the disk is full)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C), as the AWS CLI: 128 + SIGINT
# Every code the command may end with (tests assert nothing else ever comes out).
EXIT_CODES = frozenset(
    {EXIT_OK, EXIT_NOT_FOUND, EXIT_BAD_PARAMETERS, EXIT_CONFIGURATION, EXIT_SERVICE, EXIT_OTHER, EXIT_INTERRUPTED}
)


class CliError(Exception):
    """One line for the operator and the exit code that goes with it."""

    exit_code = EXIT_OTHER

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ParameterError(CliError):
    exit_code = EXIT_BAD_PARAMETERS


class ConfigurationError(CliError):
    exit_code = EXIT_CONFIGURATION


class ServiceError(CliError):
    exit_code = EXIT_SERVICE


class NotFound(CliError):
    exit_code = EXIT_NOT_FOUND


class Interrupted(CliError):
    """Ctrl-C, with what the operator needs to know (e.g. how to resume)."""

    exit_code = EXIT_INTERRUPTED
