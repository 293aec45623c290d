"""The command line (DESIGN §7): a thin front end over the core, JSON on stdout, messages on stderr.

Each sub-command lives in its own module of this package exposing ``register(subparsers)``, which
adds its parser and sets ``func`` (``args -> int``, the exit status).  Exit statuses: 0 done, 1 an
operation failed on a server, 2 bad usage, bad config or invalid input (nothing written).  Errors
derived from :class:`~opsconsole.errors.OpsConsoleError` are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
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
NO_CONFIG = frozenset({"lab", "demo"})
"""Commands that do not read the config (they make their own)."""


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line message (its default, but kept explicit)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
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
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(sub)
    for name, command in sub.choices.items():
        if name not in NO_CONFIG:
            # Also after the command (`opsconsole stats www --config lab.toml`); SUPPRESS keeps
            # a --config given before the command when none follows it.
            command.add_argument(
                "--config", metavar="PATH", default=argparse.SUPPRESS, help="config file to use"
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``opsconsole`` command: its exit status; never a traceback for what an operator
    does (bad input, an unreachable server, Ctrl-C at any moment, a closed pipe)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
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
