"""The parts of a Custom Labels model version ARN, and of a project ARN, read in one place.

A model version ARN: ``arn:<partition>:rekognition:<region>:<account>:project/<project>/version/<version>/<number>``;
a project ARN: ``arn:<partition>:rekognition:<region>:<account>:project/<project>/<number>``. Callers pass
ARNs that ``shared.validation`` accepted.
"""

from __future__ import annotations

_PROJECT = ":project/"
_VERSION = "/version/"


def project_name(arn: str) -> str:
    """The project's name, of a model version ARN or of a project ARN."""
    return arn.split(_PROJECT, 1)[1].split("/", 1)[0]


def version_name(version_arn: str) -> str:
    """The model version's name (``VersionNames`` of DescribeProjectVersions, the ``VersionName`` dimension)."""
    return version_arn.split(_VERSION, 1)[1].rsplit("/", 1)[0]


def project_prefix(version_arn: str) -> str:
    """The version ARN up to its project's name: what every ARN of that project starts with."""
    return version_arn.split(_VERSION, 1)[0]


def belongs_to_project(version_arn: str, project: str) -> bool:
    """Whether the model version is one of the project named ``project``."""
    return f"{_PROJECT}{project}{_VERSION}" in version_arn
