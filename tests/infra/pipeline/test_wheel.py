"""The wheel, installed into a fresh venv, synthesizes the README's "Use it in your own CDK app" example.

Offline: the wheel is built without build isolation (setuptools from the dev
venv) and installed with ``--no-deps --no-index``; the fresh venv borrows the
dependencies (aws-cdk-lib, cdk-nag, powertools, boto3) from the dev venv's
site-packages through a path entry, which adds that directory only (its own
.pth files, the editable install and lambda/, are not processed). So what
``autolabel`` and the functions' code the app sees is the wheel's alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SECTION = "## Use it in your own CDK app"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    match = re.search(r"^```python\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert match is not None
    return match.group(1)


def run(argv: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, **options)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its python."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a clean copy: no build/ left over from earlier builds
    source.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", source)
    for folder in ("autolabel", "lambda"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run(
        [
            *pip,
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp / "dist"),
            str(source),
        ]
    )
    (wheel,) = (tmp / "dist").glob("autolabel-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run([*pip, "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)])
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (purelib / "dependencies-from-the-dev-venv.pth").write_text(site.getsitepackages()[0] + "\n")
    return python


def test_the_wheel_installs_one_top_level_package(installed: Path) -> None:
    code = (
        "import importlib.util as u, json, sys, sysconfig, pathlib;"
        "import autolabel.cli, autolabel.queries, autolabel.function_code as f;"
        "print(json.dumps({"
        "'tops': sorted(p.name for p in pathlib.Path(sysconfig.get_path('purelib')).iterdir()),"
        "'unimportable': [n for n in ('labeler', 'manager', 'shared', 'ops', 'infra') if u.find_spec(n) is None],"
        "'loaded': [n for n in sys.modules if n.split('.')[0] in ('labeler', 'shared')],"
        "'functions': str(f.FUNCTIONS_DIR), 'prefix': sys.prefix}))"
    )
    facts = json.loads(run([str(installed), "-I", "-c", code], cwd=installed.parent).stdout)
    tops = [name for name in facts["tops"] if not name.endswith(".pth") and name != "__pycache__"]
    assert tops == ["autolabel", "autolabel-0.1.0.dist-info"]
    assert facts["unimportable"] == ["labeler", "manager", "shared", "ops", "infra"]
    assert facts["loaded"] == []  # the CLI and autolabel.queries import the functions' code, leaving no module names
    assert facts["functions"].startswith(facts["prefix"]) and facts["functions"].endswith("autolabel/_functions")
    usage = run([str(installed.parent / "autolabel"), "--help"], cwd=installed.parent).stdout
    assert "--deployment" in usage  # the console script runs from the wheel


def test_the_readme_example_synthesizes_from_a_temporary_directory(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(readme_example())
    out = tmp_path / "cdk.out"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CDK_OUTDIR": str(out),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    run([str(installed), "-I", "app.py"], cwd=tmp_path, env=env)
    template = json.loads((out / "Inspection.template.json").read_text())
    assert list(template["Outputs"]) == ["ResultsTable"]  # the app's own; the construct adds none
    handlers = {r["Properties"].get("Handler") for r in template["Resources"].values()}
    assert {"labeler.handler.handler", "manager.handler.handler"} <= handlers
    (asset,) = {p for p in out.iterdir() if p.name.startswith("asset.") and (p / "labeler").is_dir()}
    assert (asset / "labeler" / "handler.py").is_file() and (asset / "aws_lambda_powertools").is_dir()
    assert list((asset / "labeler" / "__pycache__").glob("handler.cpython-313.pyc"))  # same Python: bytecode
    manifest = json.dumps(json.loads((out / "manifest.json").read_text()))
    assert "aws:cdk:error" not in manifest and "AwsSolutions-" not in manifest  # cdk-nag clean
