"""The command line (DESIGN §7): a thin front end over the core, JSON on stdout, messages on stderr.

Each sub-command lives in its own module of this package exposing ``register(subparsers)``, which
adds its parser and sets ``func`` (``args -> int``, the exit status).  Exit statuses: 0 done, 1 an
operation failed on a server, 2 bad usage, bad config or invalid input (nothing written).  Errors
derived from :class:`~opsconsole.errors.OpsConsoleError` are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import OpsConsoleError
from .running import Interrupted, sync_interrupts

# Sub-command modules, in the order `--help` lists them.
COMMAND_MODULES = (
    "stats", "suggest", "check", "lab", "demo", "setup", "controls", "act", "audit", "report",
    "export",
)  # fmt: skip
ACT_COMMANDS = (
    "block",
    "unblock",
    "filter",
    "unfilter",
    "limit",
    "maintenance",
    "confirm",
    "rollback",
)
"""The commands of the ``act`` module; every other command's module is named after it."""
NO_CONFIG = frozenset({"lab", "demo"})
"""Commands that do not read the config (they make their own)."""


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line message (its default, but kept explicit)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def module_of(command: str) -> str | None:
    """The sub-command module that registers ``command`` (None: not a command)."""
    if command in ACT_COMMANDS:
        return "act"
    return command if command in COMMAND_MODULES and command != "act" else None


def command_in(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (None: none, or an option such as --help first)."""
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            next(args, None)
        elif arg == "--" or not arg.startswith("-"):
            return None if arg == "--" else arg
        elif not arg.startswith("--config="):
            return None  # --help, --version…: the whole parser answers
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that command's module is imported and registered
    (start-up: ``stats`` on a local log then never imports the SSH client or the console)."""
    parser = _Parser(
        prog="opsconsole",
        description=(
            "Incident console for a fleet of nginx web servers over SSH: live per-site traffic, "
            "health checks, and safe, validated, rolled-back-on-failure nginx controls. "
            "Without a command, opens the TUI on the configured fleet."
        ),
        epilog=(
            "Config search order: --config, $OPSCONSOLE_CONFIG, ./config.toml, "
            "$XDG_CONFIG_HOME/opsconsole/config.toml. Exit status: 0 done, 1 an operation failed "
            "on a server, 2 bad usage, config or input (nothing written)."
        ),
    )
    parser.add_argument("--config", metavar="PATH", help="config file to use")
    parser.add_argument("--version", action="version", version=f"opsconsole {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    only = module_of(command) if command is not None else None
    for name in (only,) if only is not None else COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(sub)
    for name, command_parser in sub.choices.items():
        if name not in NO_CONFIG:
            # Also after the command (`opsconsole stats www --config lab.toml`); SUPPRESS keeps
            # a --config given before the command when none follows it.
            command_parser.add_argument(
                "--config", metavar="PATH", default=argparse.SUPPRESS, help="config file to use"
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``opsconsole`` command: its exit status; never a traceback for what an operator
    does (bad input, an unreachable server, Ctrl-C at any moment, a closed pipe)."""
    try:
        argv = sys.argv[1:] if argv is None else argv
        parser = build_parser(command_in(argv))
        args = parser.parse_args(argv)
        # What start-up made (modules, classes, the parser) lives as long as the process: out
        # of the collector's sight, a count that makes many objects no longer has every
        # collection walk them all (stats --since all of 1M lines: 0.04 s less, median of 16).
        gc.freeze()
        func = getattr(args, "func", None)
        sync_interrupts()  # from here on, Ctrl-C lets the command clean up
        if func is None:
            from .tui import run_tui

            return run_tui(args.config)
        status: int = func(args)
        return status
    except OpsConsoleError as e:
        print(f"opsconsole: {e}", file=sys.stderr)
        return e.exit_status
    except Interrupted as e:
        if e.exit_status:
            print("opsconsole: interrupted", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        print("opsconsole: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say, and no traceback about it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
