"""The Lambda asset, and `cdk synth` through the pinned CLI with no credentials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from autolabel.cdk.bundling import bundle_functions, pinned_requirements
from autolabel.cdk.runtime import LAMBDA_PYTHON, RUNTIME

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/p.1/1700000000000"
PROJECT_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/1690000000000"


def test_asset_holds_the_labeler_and_its_pinned_runtime_dependencies(tmp_path: Path) -> None:
    bundle_functions(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"labeler", "manager", "aws_lambda_powertools", "jmespath"} <= names
    assert (tmp_path / "labeler" / "handler.py").is_file() and (tmp_path / "manager" / "handler.py").is_file()
    assert not {"boto3", "botocore", "moto", "PIL", "tests"} & names  # the runtime has boto3; no dev packages
    assert pinned_requirements() == {"aws-lambda-powertools": "3.37.0"}


def test_asset_ships_bytecode_for_the_runtime_python(tmp_path: Path) -> None:
    bundle_functions(tmp_path)
    tag = sys.implementation.cache_tag  # e.g. cpython-313
    assert f"cpython-{LAMBDA_PYTHON.replace('.', '')}" == tag
    sources = [p for p in tmp_path.rglob("*.py") if "__pycache__" not in p.parts]
    missing = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").is_file()]
    assert sources and missing == []
    # Unchecked-hash pycs (flags = 0b01): valid whatever the zip does to file times.
    pyc = tmp_path / "labeler" / "__pycache__" / f"handler.{tag}.pyc"
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01


def test_handler_imports_from_bytecode_without_compiling(tmp_path: Path) -> None:
    bundle_functions(tmp_path)
    for path in tmp_path.rglob("*.py"):
        if "__pycache__" not in path.parts:
            os.utime(path, (0, 0))  # like a zip that normalises times: unchecked pycs stay valid
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.pyc")}
    subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import labeler.handler"],
        check=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
    )
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.pyc")}
    assert after == before  # nothing recompiled or added


def test_one_python_version_for_runtime_build_and_checks() -> None:
    assert (ROOT / ".python-version").read_text().strip() == LAMBDA_PYTHON
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["mypy"]["python_version"] == LAMBDA_PYTHON
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + LAMBDA_PYTHON.replace(".", "")
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == LAMBDA_PYTHON
    assert RUNTIME.name == f"python{LAMBDA_PYTHON}"


def test_handler_imports_from_the_asset_alone(tmp_path: Path) -> None:
    bundle_functions(tmp_path)
    code = "import labeler.handler, manager.handler, aws_lambda_powertools; print(aws_lambda_powertools.__file__)"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {code}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert out.startswith(str(tmp_path))


def test_cdk_synth_with_the_pinned_cli_needs_no_credentials(tmp_path: Path) -> None:
    cli = ROOT / "node_modules" / ".bin" / "cdk"
    assert cli.exists(), "run `make setup` (npm ci installs the pinned CDK CLI)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
        }
    )
    out = tmp_path / "cdk.out"
    run = subprocess.run(
        [
            str(cli),
            "synth",
            "--quiet",
            "--no-notices",
            "-o",
            str(out),
            "-c",
            f"projectVersionArn={ARN}",
            "-c",
            f"projectArn={PROJECT_ARN}",
        ],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # Every feature flag is set in cdk.json, so a synth prints no "N feature flags are not configured".
    assert "feature flags are not configured" not in run.stdout + run.stderr
    template = json.loads((out / "Autolabel.template.json").read_text())
    assert any(r["Type"] == "AWS::Lambda::EventSourceMapping" for r in template["Resources"].values())
    assets = [p for p in out.iterdir() if p.name.startswith("asset.")]
    assert any((p / "labeler" / "handler.py").is_file() for p in assets)  # bundled locally, no Docker


def test_cdk_synth_without_model_arn_explains_how_to_pass_it(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CDK_OUTDIR": str(tmp_path), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
    )
    assert run.returncode != 0
    assert "-c projectVersionArn=" in run.stderr


def test_a_host_on_another_python_builds_the_asset_without_bytecode_and_warns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from autolabel.cdk import runtime

    monkeypatch.setattr(runtime, "host_python", lambda: "3.11")
    monkeypatch.setattr(runtime, "_warned", threading.Event())
    bundle_functions(tmp_path / "one")
    bundle_functions(tmp_path / "two")
    assert (tmp_path / "one" / "labeler" / "handler.py").is_file()
    assert not list((tmp_path / "one").rglob("*.pyc"))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "Python 3.11" in lines[0] and f"python{LAMBDA_PYTHON}" in lines[0]
