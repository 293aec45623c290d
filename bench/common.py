"""What every whole-command benchmark does first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "opsconsole"


def compile_package() -> None:
    """Byte-compile opsconsole, as an installed package is (pip compiles a wheel's modules when
    it installs them).  Without it, a machine with PYTHONDONTWRITEBYTECODE set (these are)
    compiles every module the command imports again on every run, about 0.04 s of each
    measured run that no installed copy pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PACKAGE)], check=True)
