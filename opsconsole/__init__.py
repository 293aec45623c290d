"""opsconsole: a terminal console for web-fleet incident response.

The core (everything but ``opsconsole.ui`` and ``opsconsole.cli``) is a plain asyncio library
that never imports Textual; ``opsconsole.cli`` and ``opsconsole.ui`` are two thin front ends over
its session layer (DESIGN §2).
"""

import _signal  # type: ignore[import-not-found]  # C module: `signal` imports enum, slowly
import os as _os
import sys as _sys

__version__ = "0.1.0"


def _started_as_the_command() -> bool:
    """True when this process is the ``opsconsole`` command (its script or ``python -m``), not a
    program that imports the library."""
    argv = getattr(_sys, "orig_argv", [])
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "opsconsole":
        return True
    return _os.path.basename(_sys.argv[0] if _sys.argv else "") == "opsconsole"


def _interrupted_while_starting(signum: int, frame: object) -> None:
    # Nothing has been started that would need stopping: one line, no traceback.
    _sys.stderr.write("opsconsole: interrupted\n")
    _sys.stderr.flush()
    _os._exit(130)


# The command's first line of Python: from here on a Ctrl-C while it imports (asyncio, asyncssh,
# httpx, Textual take a second) ends it quietly.  opsconsole.cli takes over once it has parsed
# the command line.
if _started_as_the_command() and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)
