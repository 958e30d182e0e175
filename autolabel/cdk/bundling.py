"""Local (Docker-free, network-free) bundling of the functions' Lambda asset.

The asset is the functions' packages ``labeler``, ``manager`` and ``shared``
(from the installed package's data, or the checkout's lambda/: see
:mod:`autolabel.function_code`) plus the pure-Python runtime dependencies
pinned in their ``requirements.txt``, copied from the synthesizing venv (which
``pip install "autolabel[cdk]"`` or ``make setup`` gave exactly those pins).
boto3 comes with the runtime. When the synthesizing Python is the runtime's
(:mod:`autolabel.cdk.runtime`), everything is compiled to bytecode,
unchecked-hash pycs so that the zip's normalised file times cannot invalidate
them: Lambda's read-only /var/task could not store what it would otherwise
compile at every cold start.
"""

from __future__ import annotations

import compileall
import py_compile
import re
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from autolabel.cdk.runtime import host_compiles_for_runtime, warn_no_bytecode_once
from autolabel.function_code import FUNCTIONS_DIR

_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Both functions share one asset: the two function packages and their shared kit.
PACKAGES = ("labeler", "manager", "shared")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.dist-info", "tests")


def pinned_requirements(path: Path = FUNCTIONS_DIR / "requirements.txt") -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw_line in path.read_text().splitlines():
        line = raw_line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _distribution_closure(names: list[str]) -> list[metadata.Distribution]:
    """The distributions and their (non-extra) requirements, boto3 excluded."""
    seen: dict[str, metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in seen or name in {"boto3", "botocore", "s3transfer"}:
            continue
        dist = metadata.distribution(name)
        seen[name] = dist
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            match = _REQUIREMENT_NAME.match(requirement)
            if match:
                pending.append(match.group(0))
    return list(seen.values())


def _top_level_paths(dist: metadata.Distribution) -> set[str]:
    tops: set[str] = set()
    for file in dist.files or []:
        top = file.parts[0]
        if top.endswith((".dist-info", ".egg-info")) or top in {"..", "bin"} or top.startswith("__"):
            continue
        tops.add(top)
    return tops


def bundle_functions(output_dir: Path, *, bytecode: bool | None = None) -> None:
    """The asset in ``output_dir``; bytecode only when this Python is the runtime's (``bytecode=None``)."""
    pins = pinned_requirements()
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "nothing"
        if installed != version:
            raise RuntimeError(
                f"the functions need {name}=={version} but {installed} is installed: "
                f'install "autolabel[cdk]" (in the checkout: make setup)'
            )
    for package in PACKAGES:
        shutil.copytree(FUNCTIONS_DIR / package, output_dir / package, ignore=SKIP, dirs_exist_ok=True)
    for dist in _distribution_closure(list(pins)):
        site = Path(str(dist.locate_file("")))
        for top in _top_level_paths(dist):
            source = site / top
            if source.is_dir():
                shutil.copytree(source, output_dir / top, ignore=SKIP, dirs_exist_ok=True)
            elif source.is_file():
                shutil.copy2(source, output_dir / top)
    if bytecode is None:
        bytecode = host_compiles_for_runtime()
        if not bytecode:
            warn_no_bytecode_once()
    if bytecode:
        compile_bytecode(output_dir)


def compile_bytecode(output_dir: Path) -> None:
    ok = compileall.compile_dir(
        str(output_dir),
        quiet=1,
        workers=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise RuntimeError(f"could not compile the Lambda asset in {output_dir} to bytecode")


@jsii.implements(ILocalBundling)
class _LocalBundling:
    def try_bundle(self, output_dir: str, options: Any) -> bool:
        bundle_functions(Path(output_dir))
        return True


def functions_code() -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR),
        exclude=["**/__pycache__", "*.pyc", "requirements.txt"],  # of the source; the bundle compiles its own
        bundling=BundlingOptions(
            # Never used: local bundling always succeeds or raises.
            image=DockerImage.from_registry("unused-local-bundling-only"),
            # jsii calls try_bundle(output_dir, options) positionally, not as
            # the keyword signature its Python stub declares.
            local=_LocalBundling(),  # type: ignore[arg-type]
        ),
    )
