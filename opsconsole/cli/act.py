"""The acting commands of DESIGN §7: ``block``, ``unblock``, ``filter``, ``unfilter``, ``limit``,
``maintenance``, ``confirm`` and ``rollback``.

Each parser turns its arguments into one validated edit of :mod:`opsconsole.controls.edits` (or a
confirm / rollback) and hands it to :func:`.acting.run_acting`, which owns the guard rails
(read-only, ``--yes``, validation before any connection), the preview and the printed result.
Imports the core and :mod:`.acting` only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ..controls import Edit, edits
from ..durations import parse_duration
from ..errors import UsageError
from ..session import Settle
from .acting import add_options, run_acting

EPILOG = (
    "Every change is validated before any server is contacted, then applied to every server of "
    "the service in parallel: locked, compared with the version read, written beside the old "
    "files and swapped in atomically, checked by nginx -t, reloaded (new workers verified), "
    "and recorded in the audit trail. A server where anything fails keeps its previous files "
    "and config. Exit status: 0 done, 1 failed on a server (nginx's message on stderr), 2 bad "
    "usage, config or input (nothing written)."
)


def _parser(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=description, epilog=EPILOG
    )
    p.add_argument("service", metavar="SERVICE", help="a service of the config ([services.NAME])")
    return p


def _read_targets(args: argparse.Namespace) -> list[str]:
    """TARGET… and the ``--from-file`` list (one or more per line, ``#`` comments)."""
    targets = list(args.targets)
    if args.from_file:
        try:
            if args.from_file == "-":
                text = sys.stdin.read()
            else:
                with open(args.from_file, encoding="utf-8") as f:
                    text = f.read()
        except UnicodeDecodeError as e:
            raise UsageError(
                f"--from-file {args.from_file}: not a text file (byte 0x{e.object[e.start]:02x} "
                f"at offset {e.start} is not UTF-8); expected one IP address or CIDR per line"
            ) from None
        except OSError as e:
            raise UsageError(f"--from-file {args.from_file}: {e.strerror or e}") from None
        for line in text.splitlines():
            targets.extend(line.split("#", 1)[0].split())
    if not targets:
        raise UsageError(f"{args.command}: give at least one IP address or CIDR network")
    return targets


def _targets_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "targets",
        metavar="TARGET",
        nargs="*",
        help="an IPv4/IPv6 address or CIDR network, e.g. 203.0.113.7, 203.0.113.0/24, "
        "2001:db8::/48",
    )
    p.add_argument(
        "--from-file",
        metavar="PATH",
        help="also read targets from PATH ('-': stdin), whitespace-separated, '#' comments",
    )


def _seconds(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as e:
        raise UsageError(f"{option}: {e}") from None


def _go(make: Callable[[argparse.Namespace], Edit]) -> Callable[[argparse.Namespace], int]:
    return lambda args: run_acting(args, lambda: make(args))


def register(sub: Any) -> None:
    p = _parser(
        sub,
        "block",
        "block IP addresses or networks (403) on every server of a service",
        "Answer 403 to the given clients (their real address, as nginx's realip module sees "
        "it). Uses an nginx geo map: 100,000 entries cost nothing per request. A block "
        "broader than /16 (IPv4) or /32 (IPv6) is commit-confirmed by default; one broader "
        "than /8 (IPv6 /16) is refused without --everyone. Blocking a target that is already "
        "blocked keeps it as it is (author, time, reason, expiry) unless --reason, --ttl or "
        "--permanent says otherwise.",
    )
    _targets_arguments(p)
    p.add_argument(
        "--reason", default="", help="why (stored with the block and in the audit; kept if omitted)"
    )
    life = p.add_mutually_exclusive_group()
    life.add_argument(
        "--ttl",
        metavar="DURATION",
        help="remove the block after DURATION (e.g. 30m, 1h, 2d): by the next apply, or by a "
        "running console when it falls due",
    )
    life.add_argument(
        "--permanent",
        action="store_true",
        help="no expiry: also removes the expiry of a target already blocked with --ttl",
    )
    p.add_argument(
        "--everyone",
        action="store_true",
        help="allow a block broader than /8 (IPv6 /16), such as 0.0.0.0/0: it stops real "
        "visitors too",
    )
    add_options(p)
    p.set_defaults(
        func=_go(
            lambda a: edits.block(
                _read_targets(a),
                reason=a.reason,
                ttl=_seconds("--ttl", a.ttl),
                permanent=a.permanent,
                everyone=a.everyone,
            )
        )
    )

    p = _parser(
        sub,
        "unblock",
        "remove blocks",
        "Remove the given addresses or networks from the block list (as written when blocked; "
        "`opsconsole controls SERVICE` lists them).",
    )
    _targets_arguments(p)
    add_options(p)
    p.set_defaults(func=_go(lambda a: edits.unblock(_read_targets(a))))

    p = _parser(
        sub,
        "filter",
        "refuse requests by path, user agent, method or referer (1-3 conditions, all must match)",
        "Answer 403 (or close the connection: 444) to requests that match every condition "
        "given (one to three of --path, --user-agent, --method, --referer). Regexes are PCRE "
        "as nginx reads them, matched anywhere unless anchored (^…$); '(?i)' at the start "
        "ignores case. Only a safe subset is accepted: no quotes, no nested repetitions like "
        "(a+)+, no backreferences. The path is nginx's $uri: decoded, without the query "
        "string; the referer is the header, empty when absent (--referer '^$': no referer).",
    )
    what = p.add_argument_group("conditions (one to three; a request must match all)")
    what.add_argument("--path", metavar="RE", help="regex on the request path ($uri)")
    what.add_argument("--user-agent", metavar="RE", help="regex on the User-Agent header")
    what.add_argument("--method", metavar="M", help="an HTTP method, e.g. POST (exact match)")
    what.add_argument("--referer", metavar="RE", help="regex on the Referer header")
    p.add_argument(
        "--exact",
        action="store_true",
        help="match the path, user agent and referer literally (whole value) instead of as regexes",
    )
    p.add_argument(
        "--action",
        choices=("403", "444"),
        default="403",
        help="403 Forbidden (default) or 444: close the connection without an answer",
    )
    p.add_argument("--reason", default="", help="why (stored with the filter and in the audit)")
    add_options(p)
    p.set_defaults(func=_go(_filter_edit))

    p = _parser(
        sub,
        "unfilter",
        "remove a filter",
        "Remove the filter with the given id (f1, f2…: `opsconsole controls SERVICE` lists them).",
    )
    p.add_argument("filter_id", metavar="FILTER_ID", help="e.g. f3")
    add_options(p)
    p.set_defaults(func=_go(lambda a: edits.remove_filter(a.filter_id)))

    p = _parser(
        sub,
        "limit",
        "rate-limit each client (429 beyond the rate)",
        "Limit the request rate of each client address (--key ip) or each /24 (IPv6 /48) "
        "network (--key subnet) with nginx's limit_req; requests beyond RATE plus the burst "
        "get 429. RATE is N r/s or N r/m (e.g. 10r/s, 600r/m); 'off' removes the limit.",
    )
    p.add_argument("rate", metavar="RATE|off", help="e.g. 5r/s, 600r/m, or off")
    p.add_argument(
        "--burst",
        default="0",
        metavar="N",
        help="requests allowed above the rate at once, answered without delay (default 0)",
    )
    p.add_argument("--key", choices=("ip", "subnet"), default="ip", help="what is limited")
    add_options(p)
    p.set_defaults(func=_go(lambda a: edits.limit(a.rate, burst=a.burst, key=a.key)))

    p = _parser(
        sub,
        "maintenance",
        "switch maintenance mode: a 503 page for everyone but an allow list",
        "'on' answers every request with a maintenance page (503, Retry-After) except those "
        "from the --allow networks; 'off' restores the site, commit-confirmed by default "
        "(the flood may come back). The allow list and message are kept until changed (the "
        "preview says what is kept); --allow none clears the list.",
    )
    p.add_argument("state", choices=("on", "off"), help="on or off")
    p.add_argument(
        "--allow",
        nargs="+",
        metavar="CIDR",
        help="addresses or networks that still reach the site (e.g. your office, 127.0.0.1); "
        "'none' clears the list",
    )
    p.add_argument("--message", metavar="TEXT", help="one line shown on the page (≤ 500 chars)")
    add_options(p)
    p.set_defaults(
        func=_go(lambda a: edits.maintenance(a.state == "on", allow=a.allow, message=a.message))
    )

    for verb, help, description in (
        (
            Settle.CONFIRM,
            "keep a commit-confirmed change",
            "Keep the commit-confirmed change that awaits confirmation on every server of the "
            "service (stops the servers' revert timers). It changes nothing nginx does, so it "
            "never asks, with or without a terminal; with nothing awaiting confirmation it says "
            "so and exits 0.",
        ),
        (
            Settle.ROLLBACK,
            "revert the last change at once",
            "Revert at once: the change awaiting confirmation, or else the last applied change "
            "(one level). Each server tests and reloads the previous files. With nothing to "
            "roll back it says so and exits 0.",
        ),
    ):
        p = _parser(sub, verb.value, help, description)
        add_options(p, edit=False)
        p.set_defaults(func=lambda a, mode=verb: run_acting(a, lambda: mode))


def _filter_edit(a: argparse.Namespace) -> Edit:
    given = [
        (fld, value)
        for fld, value in (
            ("path", a.path),
            ("user_agent", a.user_agent),
            ("method", a.method),
            ("referer", a.referer),
        )
        if value is not None
    ]
    if not given:
        raise UsageError("filter: give one to three of --path, --user-agent, --method, --referer")
    conditions = [
        (fld, value, "exact" if a.exact or fld == "method" else "regex") for fld, value in given
    ]
    return edits.add_filter(conditions=conditions, action=a.action, reason=a.reason)
