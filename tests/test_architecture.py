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


def test_each_command_alone_parses_as_in_the_whole_parser() -> None:
    """`main` registers only the named command's module (start-up time); the map from command
    to module must cover every command the whole parser has, and each alone must accept it."""
    import argparse

    from opsconsole.cli import build_parser, command_in, module_of

    def commands(parser: argparse.ArgumentParser) -> set[str]:
        (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return set(sub.choices)

    every = commands(build_parser())
    assert {"stats", "block", "export", "lab"} <= every
    for name in every:
        assert module_of(name) is not None, name
        assert name in commands(build_parser(name))
    assert module_of("frobnicate") is None
    assert command_in(["--config", "stats", "stats", "www"]) == "stats"
    assert command_in(["--config=x.toml", "block", "www", "1.2.3.4"]) == "block"
    assert command_in(["--help", "stats"]) is None and command_in([]) is None


def test_stats_on_a_local_log_never_imports_the_ssh_client_or_the_console() -> None:
    code = (
        "import sys\n"
        "from opsconsole.cli import build_parser\n"
        "import opsconsole.cli.stats, opsconsole.fleet\n"
        "build_parser('stats')\n"
        "heavy = ('asyncssh', 'httpx', 'textual', 'numpy', 'opsconsole.session',\n"
        "         'opsconsole.lab')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
