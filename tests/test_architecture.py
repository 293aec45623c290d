"""DESIGN §2: the core never imports Textual; the TUI is a front end over it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import opsconsole


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(opsconsole.__path__, "opsconsole."):
        if not info.name.startswith("opsconsole.ui") and info.name != "opsconsole.__main__":
            names.append(info.name)
    return names


def test_importing_every_core_module_does_not_load_textual() -> None:
    modules = core_modules()
    assert "opsconsole.stats.traffic" in modules and "opsconsole.fleet" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"core modules pulled in Textual: {proc.stdout}"
