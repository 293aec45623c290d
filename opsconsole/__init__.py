"""opsconsole: a terminal console for web-fleet incident response.

The core (everything but ``opsconsole.ui``) is a plain asyncio library that never imports Textual;
``opsconsole.cli`` and ``opsconsole.ui`` are two thin front ends over it (DESIGN §2).
"""

__version__ = "0.1.0"
