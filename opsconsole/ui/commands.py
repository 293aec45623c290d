"""The command palette (Ctrl+P): every action of the screen in front, and every service.

Textual's palette lists the app's system commands; this provider adds each binding of the active
screen and of the app (so whatever a key does can also be found by name) and, per service, opening
it and its control actions.  Used by :class:`opsconsole.ui.app.OpsConsoleApp` (``COMMANDS``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from ..session import Settle
from .screens.forms import maintenance_form

if TYPE_CHECKING:
    from .app import OpsConsoleApp


def screen_bindings(node: Any) -> Iterator[Binding]:
    """The described bindings declared by ``node``'s class and its bases."""
    seen: set[str] = set()
    for cls in type(node).__mro__:
        for b in cls.__dict__.get("BINDINGS", []):
            if isinstance(b, Binding) and b.description and b.action not in seen:
                seen.add(b.action)
                yield b


class ActionsProvider(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = cast("OpsConsoleApp", self.app)
        screen = self.screen  # the screen the palette was opened from
        out: list[tuple[str, Callable[[], Any], str]] = []
        for node in (screen, app):
            for b in screen_bindings(node):
                where = "app" if node is app else type(node).__name__.removesuffix("Screen")
                title = f"{b.description} ({where}, key {b.key_display or b.key})"
                out.append((title, partial(node.run_action, b.action), b.tooltip or b.action))
        for name in app.source.services():
            out.append((f"Open service {name}", partial(app.open_service, name), "service screen"))
            out.append(
                (f"Maintenance on/off: {name}", maintenance_form(app, name), "preview first")
            )
            out.append((f"Confirm change on {name}", partial(app.settle, name, Settle.CONFIRM), ""))
            out.append(
                (
                    f"Roll back last change on {name}",
                    partial(app.settle, name, Settle.ROLLBACK),
                    "",
                )
            )
        return out

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
