"""Where the functions' code is, and how this package imports from it without changing the host process.

The Lambda functions' packages (``labeler``, ``manager``, ``shared``) are
top-level packages inside the Lambda asset (handler ``labeler.handler.handler``).
An installed wheel carries them as package data under ``autolabel/_functions``;
a checkout has them under ``lambda/``. :func:`import_function_module` imports a
module of theirs for the construct, the read-side API and the command line,
and leaves ``sys.path`` and ``sys.modules`` as they were: a host app with its
own package named ``shared`` keeps it, and never sees ours.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

_PACKAGE_DIR = Path(__file__).resolve().parent
# The wheel's package data, else the checkout's lambda/ beside this package.
FUNCTIONS_DIR = (
    _PACKAGE_DIR / "_functions" if (_PACKAGE_DIR / "_functions").is_dir() else _PACKAGE_DIR.parent / "lambda"
)
PACKAGES = ("labeler", "manager", "shared")

_lock = threading.Lock()
_isolated: dict[str, ModuleType] = {}


def _on_path_already() -> bool:
    """True when ``shared`` etc. already import from FUNCTIONS_DIR (the checkout's dev venv, the tests)."""
    spec = importlib.util.find_spec("shared") if "shared" not in sys.modules else sys.modules["shared"].__spec__
    origin = spec.origin if spec is not None else None
    return origin is not None and Path(origin).resolve().parent.parent == FUNCTIONS_DIR


def import_function_module(name: str) -> ModuleType:
    """The module ``name`` (e.g. ``"shared.names"``) of the functions' packages.

    In the checkout (lambda/ on the path) that is the ordinary import. From an
    installed wheel the functions' packages are imported once, isolated: the
    host's own modules of those names are set aside while ours load, then put
    back, and ours are kept here only.
    """
    if name.split(".", 1)[0] not in PACKAGES:
        raise ValueError(f"{name!r} is not a module of the functions' packages {PACKAGES}")
    if _on_path_already():
        return importlib.import_module(name)
    with _lock:
        if name not in _isolated:
            _import_isolated(name)
        return _isolated[name]


def _owned(module_name: str) -> bool:
    return module_name.split(".", 1)[0] in PACKAGES


def _import_isolated(name: str) -> None:
    hosts = {key: module for key, module in sys.modules.items() if _owned(key)}
    for key in hosts:
        del sys.modules[key]
    sys.modules.update(_isolated)  # what we loaded before, so shared modules stay one object
    sys.path.insert(0, str(FUNCTIONS_DIR))
    try:
        importlib.import_module(name)
    finally:
        sys.path.remove(str(FUNCTIONS_DIR))
        for key in [key for key in sys.modules if _owned(key)]:
            _isolated[key] = sys.modules.pop(key)
        sys.modules.update(hosts)


def function_names(module: str, *names: str) -> tuple[object, ...]:
    """Attributes of a functions' module, e.g. ``function_names("shared.names", "METRICS_NAMESPACE")``."""
    loaded = import_function_module(module)
    return tuple(getattr(loaded, name) for name in names)
