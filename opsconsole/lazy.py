"""Package namespaces that import their modules when a name is first used (PEP 562).

A command that needs one value of a package (``fleet`` needs ``health.report.Status``) should
not pay for the whole package (the health checks import httpx; the SSH transport, asyncssh):
``opsconsole stats`` on a local log starts in a third of the time.  A package lists its public
names by module and keeps the real imports under ``TYPE_CHECKING`` for the type checker.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``names`` maps each public name to the
    submodule (``".check"``) that defines it; the value is imported on first use and kept."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        globals_of = importlib.import_module(package).__dict__
        globals_of[name] = value
        return value

    return __getattr__
