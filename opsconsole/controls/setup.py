"""``setup SERVICE`` (DESIGN §5): empty snippets in place, and proof that nginx includes them.

Called by the CLI's ``setup`` command (and usable by the TUI).  Per server, in parallel:

1. create the control directory and an empty ``<service>.http.conf`` / ``<service>.server.conf``
   where none exists (under the service's lock; an existing file or link is never touched);
2. run the configured ``nginx_test`` with ``-t`` turned into ``-T``: nginx checks its config and
   prints every file it read, so the answer comes from nginx itself, globs and relative paths
   resolved as nginx resolves them;
3. walk that dump from the main file, following ``include`` directives with their block context,
   and report whether the http snippet is included directly in ``http {}`` and the server snippet
   directly in a ``server {}`` (with that block's ``server_name``).

It never edits the operator's own files: where an include is missing it says which line to add.
Standard library, :mod:`opsconsole.config`, the transport interface and this package.
"""

from __future__ import annotations

import asyncio
import fnmatch
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import Config, ServiceConfig
from ..errors import OperationError, UsageError
from ..transport.base import Transport, TransportError
from .remote import service_of
from .render import check_control_dir

DUMP_TIMEOUT = 120.0

_CREATE = r"""
set -u
dir=$1 svc=$2
mkdir -p -- "$dir" || exit 79
cd -- "$dir" || exit 79
exec 9>>".$svc.lock" || exit 79
flock -w 10 9 || { echo "another operation on $svc holds $dir/.$svc.lock" >&2; exit 75; }
for f in http.conf server.conf; do
  if [ ! -e "$svc.$f" ] && [ ! -L "$svc.$f" ]; then
    : > "$svc.$f" && chmod 0644 "$svc.$f" || exit 79
    printf 'OPSC created %s\n' "$dir/$svc.$f"
  fi
done
"""

_SHELL_SYNTAX = re.compile(r"[;&|<>`$(){}\\\"'*?\[\]~\n]")
_HEADER = re.compile(r"^# configuration file (.+):$", re.M)
_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|(?P<p>[{};])|"(?P<dq>(?:\\.|[^"\\])*)"|'(?P<sq>(?:\\.|[^'\\])*)'"""
    r"""|(?P<w>(?:\$\{[^}]*\}|[^\s;{}])+)""",
    re.S,
)


@dataclass
class _Block:
    name: str
    server_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Inclusion:
    """One place nginx reads a snippet: the block path (``("http", "server")``) and names."""

    context: tuple[str, ...]
    server_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerSetup:
    """The outcome on one server."""

    server: str
    http_file: str
    server_file: str
    created: tuple[str, ...] = ()
    checked: bool = False
    """False when nginx could not be asked (the error says why)."""
    askable: bool = True
    """False when ``nginx_test`` cannot be turned into ``nginx -T``: the includes must be checked
    by hand (the error says so)."""
    http_at: tuple[Inclusion, ...] = ()
    server_at: tuple[Inclusion, ...] = ()
    error: str | None = None

    @property
    def http_included(self) -> bool:
        return any(i.context == ("http",) for i in self.http_at)

    @property
    def server_included(self) -> bool:
        return any(i.context == ("http", "server") for i in self.server_at)

    def misplaced(self) -> list[str]:
        """Inclusions in the wrong block (``geo`` in a server, ``if`` at http level…)."""
        out = []
        for path, at, want in (
            (self.http_file, self.http_at, ("http",)),
            (self.server_file, self.server_at, ("http", "server")),
        ):
            for inc in at:
                if inc.context != want:
                    where = " > ".join(inc.context) or "the main level"
                    out.append(f"{path} is included in {where} {{}}, not in {want[-1]} {{}}")
        return out

    def missing(self) -> dict[str, str]:
        """Block ("http", "server") -> the exact line to add inside it."""
        out: dict[str, str] = {}
        if self.checked and not self.http_included:
            out["http"] = f"include {self.http_file};"
        if self.checked and not self.server_included:
            out["server"] = f"include {self.server_file};"
        return out

    @property
    def ok(self) -> bool:
        return self.checked and self.error is None and not self.missing() and not self.misplaced()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "created": list(self.created),
            "checked": self.checked,
            "askable": self.askable,
            "http_conf": {"path": self.http_file, "included": self.http_included},
            "server_conf": {
                "path": self.server_file,
                "included": self.server_included,
                "server_names": sorted({n for i in self.server_at for n in i.server_names}),
            },
            "misplaced": self.misplaced(),
            "missing": [{"block": b, "line": line} for b, line in self.missing().items()],
        }


@dataclass(frozen=True)
class SetupReport:
    service: str
    servers: dict[str, ServerSetup]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.servers.values())

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "ok": self.ok,
            "servers": {n: s.to_dict() for n, s in self.servers.items()},
        }


def dump_command(nginx_test: str) -> list[str] | None:
    """``nginx_test`` with ``-t`` replaced by ``-T`` (and ``-q`` dropped), or None when it is not
    a plain command line (shell syntax, no ``-t``) and cannot be turned into one safely."""
    try:
        words = shlex.split(nginx_test)
    except ValueError:
        return None
    if "-t" not in words or any(_SHELL_SYNTAX.search(w) for w in words):
        return None
    return ["-T" if w == "-t" else w for w in words if w != "-q"]


def split_dump(text: str) -> dict[str, str]:
    """The files of an ``nginx -T`` dump, in the order nginx read them (the main file first)."""
    parts = _HEADER.split(text)
    return {posixpath.normpath(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _matches(pattern: str, path: str) -> bool:
    """nginx's include: glob(3) per path component (``*`` never crosses ``/``)."""
    if not any(c in pattern for c in "*?["):
        return pattern == path
    pp, parts = pattern.split("/"), path.split("/")
    return len(pp) == len(parts) and all(
        fnmatch.fnmatchcase(p, g) for p, g in zip(parts, pp, strict=True)
    )


def inclusions(files: Mapping[str, str], targets: set[str]) -> dict[str, list[Inclusion]]:
    """Where each of ``targets`` (absolute paths) is included, walking the dump from its first
    file with the block context of each ``include``."""
    found: dict[str, list[tuple[tuple[str, ...], _Block | None]]] = {t: [] for t in targets}
    names = list(files)
    if not names:
        return {}
    prefix = posixpath.dirname(names[0])

    def walk(path: str, stack: list[_Block], depth: int) -> None:
        text = files[path]
        if depth > 16 or ("include" not in text and "server_name" not in text):
            return  # a rendered snippet (or a 5 MB geo): nothing to follow in it
        words: list[str] = []
        for m in _TOKEN.finditer(text):
            punct = m.group("p")
            if punct is None:
                word = next((g for g in m.group("w", "dq", "sq") if g is not None), None)
                if word is not None:
                    words.append(word)
                continue
            if punct == "{":
                stack.append(_Block(words[0] if words else ""))
            elif punct == "}":
                if stack:
                    stack.pop()
            elif words[:1] == ["server_name"] and stack and stack[-1].name == "server":
                stack[-1].server_names.extend(words[1:])
            elif words[:1] == ["include"] and len(words) == 2:
                pattern = posixpath.normpath(posixpath.join(prefix, words[1]))
                for name in names:
                    if _matches(pattern, name):
                        if name in found:
                            ctx = tuple(b.name for b in stack)
                            found[name].append((ctx, stack[-1] if stack else None))
                        walk(name, stack, depth + 1)
            words = []

    walk(names[0], [], 0)
    return {
        t: [Inclusion(ctx, tuple(b.server_names) if b else ()) for ctx, b in at]
        for t, at in found.items()
    }


async def setup_on_server(
    transport: Transport, svc: ServiceConfig, server: str, *, create: bool = True
) -> ServerSetup:
    cdir = check_control_dir(svc.control_dir_on(server))
    http_file = posixpath.normpath(f"{cdir}/{svc.name}.http.conf")
    server_file = posixpath.normpath(f"{cdir}/{svc.name}.server.conf")
    created: tuple[str, ...] = ()
    askable = True
    try:
        if create:
            argv = ["sh", "-c", _CREATE, "opsc-setup", cdir, svc.name]
            res = await transport.run(argv, timeout=60, privileged=True)
            if not res.ok:
                raise OperationError(f"cannot create the snippets in {cdir}: {res.error_text()}")
            created = tuple(
                line[len("OPSC created ") :]
                for line in res.stdout.decode("utf-8", "replace").splitlines()
                if line.startswith("OPSC created ")
            )
        test = svc.nginx_test_on(server)
        dump = dump_command(test)
        if dump is None:
            askable = False
            raise OperationError(
                f"nginx_test {test!r} is not a plain nginx command with -t, so nginx cannot be "
                "asked which files it includes; check the include lines below by hand"
            )
        res = await transport.run(dump, timeout=DUMP_TIMEOUT, privileged=True)
        if not res.ok:
            raise OperationError(f"nginx -t failed: {res.error_text()}")
        text = res.stdout.decode("utf-8", "replace")
        found = inclusions(split_dump(text), {http_file, server_file})
    except (OperationError, UsageError, TransportError) as e:
        return ServerSetup(server, http_file, server_file, created, askable=askable, error=str(e))
    return ServerSetup(
        server,
        http_file,
        server_file,
        created,
        checked=True,
        http_at=tuple(found.get(http_file, ())),
        server_at=tuple(found.get(server_file, ())),
    )


async def setup_service(
    config: Config, service: str, transports: Mapping[str, Transport], *, create: bool = True
) -> SetupReport:
    """Run :func:`setup_on_server` on every server of ``service`` in parallel.

    ``create=False`` only checks (read-only consoles).  A server whose transport raises is
    reported with its error; nothing else is written anywhere.
    """
    svc = service_of(config, service, transports)
    results = await asyncio.gather(
        *(setup_on_server(transports[n], svc, n, create=create) for n in svc.servers)
    )
    return SetupReport(service, {r.server: r for r in results})
