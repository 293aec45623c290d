"""Operator input is refused with a clear message, or reaches the snippets only in a safe shape.

The examples are the ones an attacker or a tired operator would type; the properties throw random
strings at every validator and at every edit, and read the rendered files back line by line
against the grammar the renderer is allowed to produce.
"""

from __future__ import annotations

import html
import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from opsconsole.controls import edits, validate
from opsconsole.controls import state as cs
from opsconsole.controls.render import exact_token, regex_token, render
from opsconsole.controls.state import ControlState, state_from_json, state_to_json
from opsconsole.errors import UsageError

NOW = datetime(2026, 11, 24, 15, 0, 0, tzinfo=UTC)

# --- examples ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("203.0.113.0/24", "203.0.113.0/24"),
        ("203.0.113.7/32", "203.0.113.7"),
        ("2001:DB8::/32", "2001:db8::/32"),
        ("2001:db8:0:0::1", "2001:db8::1"),
        ("10.0.0.0/255.0.0.0", "10.0.0.0/8"),
        ("::ffff:203.0.113.7", "203.0.113.7"),  # nginx's geo looks mapped clients up as IPv4
        ("::ffff:cb00:7100/120", "203.0.113.0/24"),
        ("255.255.255.254/31", "255.255.255.254/31"),
    ],
)
def test_addresses_and_networks_are_accepted_in_canonical_form(value: str, expected: str) -> None:
    assert validate.target(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("999.1.1.1", "not an IP address"),
        ("10.0.0.0/33", "not an IP address"),
        ("::g", "not an IP address"),
        ("1.2.3.4; }", "not an IP address"),
        ("1.2.3.4\n", "not an IP address"),
        ("$(reboot)", "not an IP address"),
        ("`reboot`", "not an IP address"),
        ("fe80::1%eth0", "not an IP address"),
        ("", "not an IP address"),
        ("203.0.113.9/24", "did you mean 203.0.113.0/24"),
        ("2001:db8::1/48", "did you mean 2001:db8::/48"),
        ("255.255.255.255", "no client can have it"),
        ("255.255.255.255/32", "no client can have it"),
        ("::ffff:255.255.255.255", "no client can have it"),
    ],
)
def test_bad_addresses_are_refused_saying_why(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        validate.target(value)


@pytest.mark.parametrize("value", ["10r/s", "600r/m", "1r/s", "100000r/m", "10 r/s"])
def test_rates_in_requests_per_second_or_minute_are_accepted(value: str) -> None:
    assert re.fullmatch(r"[0-9]+r/[sm]", validate.rate(value))


@pytest.mark.parametrize(
    "value", ["0r/s", "100001r/s", "10r/h", "10", "ten r/s", "-1r/s", "10r/s;", "10r/s\n", ""]
)
def test_other_rates_are_refused(value: str) -> None:
    with pytest.raises(UsageError, match="rate"):
        validate.rate(value)


@pytest.mark.parametrize("value", [-1, 100_001, 10**12, True, "1e3", "5;", 2.5])
def test_negative_huge_or_non_integer_bursts_are_refused(value: object) -> None:
    with pytest.raises(UsageError, match="burst"):
        validate.burst(value)


def test_messages_and_reasons_are_bounded_printable_text() -> None:
    assert validate.message('Back at 15:00; "sorry" <3 & thanks — é').startswith("Back")
    with pytest.raises(UsageError, match="at most 500"):
        validate.message("x" * 501)
    with pytest.raises(UsageError, match="at most 200"):
        validate.reason("x" * 201)
    for bad in ("line one\nline two", "bell\x07", "bidi\u202eevil", "nul\x00"):
        with pytest.raises(UsageError, match="control character"):
            validate.message(bad)
        with pytest.raises(UsageError, match="control character"):
            validate.reason(bad)


@pytest.mark.parametrize(
    "value",
    [r"^/wp-(login|admin)\.php$", "(?i)sqlmap|nikto", "^/x{2,3}/", "; MSIE 6", r"^/a\x24b", "a$|b"],
)
def test_useful_regexes_are_accepted(value: str) -> None:
    assert validate.regex(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('x"; include /etc/passwd; #', "double quote"),
        ("x'", "single quote"),
        ("`reboot`", "backtick"),
        ("$(reboot)", "end anchor"),
        ("$host", "end anchor"),
        ("a\\\nb", "control"),
        ("a\tb", "control"),
        ("caf\u00e9", "non-ASCII"),
        (" x", "space"),
        ("(?P<opsc_www_blocked>.*)", "'(?' constructs"),
        ("(?=x)", "'(?' constructs"),
        ("x(?i)", "'(?' constructs"),
        ("(a+)+", "nests a repetition"),
        ("(.*)*", "nests a repetition"),
        ("(a|aa)+", "repeats an alternation"),
        (r"(a)\1", "backreferences"),
        ("[unclosed", "does not compile"),
        ("x" * 201, "at most 200"),
        ("", "non-empty"),
        (r"x\Z", "reads differently"),  # PCRE's \Z also matches before a final newline
        (r"\v", "reads differently"),  # PCRE's \v is any vertical space
        ("[[:alpha:]]+", "inside a [...] set"),  # a POSIX class for PCRE, a plain set for Python
        ("[[]", "inside a [...] set"),
        ("[a&&b]", "inside a [...] set"),
        ("x{1001}", "more than 1000 times"),  # PCRE refuses counts over 65535 at nginx -t
    ],
)
def test_dangerous_regexes_are_refused_saying_why(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        validate.regex(value)


@pytest.mark.parametrize("value", [r"x\\Z", r"[\[:a]", "[]:]", "[.]", "x{1000}", r"a\\v"])
def test_look_alikes_of_the_refused_constructs_are_accepted(value: str) -> None:
    assert validate.regex(value) == value


def test_exact_patterns_take_any_printable_text_and_methods_only_letters() -> None:
    assert validate.pattern("path", "exact", '/a"b;{}$') == '/a"b;{}$'
    assert validate.pattern("method", "exact", "PROPFIND") == "PROPFIND"
    with pytest.raises(UsageError, match="HTTP method"):
        validate.pattern("method", "exact", "GET;")
    with pytest.raises(UsageError, match="matched exactly"):
        validate.pattern("method", "regex", "GET|POST")


def test_a_referer_is_a_filter_field_and_its_regex_can_say_no_referer() -> None:
    assert validate.field("referer") == "referer"
    assert validate.pattern("referer", "regex", "^$") == "^$"
    with pytest.raises(UsageError, match="expected path, user_agent, method or referer"):
        validate.field("cookie")


def test_conditions_are_one_to_three_one_per_field_in_canonical_order() -> None:
    assert validate.conditions(
        [("referer", "^$"), {"field": "method", "pattern": "POST"}, ("path", "^/x", "regex")]
    ) == (("path", "^/x", "regex"), ("method", "POST", "exact"), ("referer", "^$", "regex"))
    for bad, message in [
        ([], "one to three conditions"),
        ([("path", "a"), ("user_agent", "b"), ("method", "GET"), ("referer", "c")], "one to three"),
        ([("path", "a"), ("path", "b")], "at most one condition per field"),
        ([("method", "GET|POST", "regex")], "matched exactly"),
        ([("host", "x")], "filter field"),
        ([{"field": "path", "pattern": "a", "flags": "i"}], "unknown keys"),
        ("path", "expected a list"),
        ([("path",)], "must be (field, pattern, match)"),
    ]:
        with pytest.raises(UsageError, match=re.escape(message)):
            validate.conditions(bad)


# Attempts to break out of the nginx token, in every field and both match kinds.
INJECTIONS = [
    'x"; return 200; #',
    "x'; }",
    "a\n}",
    "a\r\nif ($x) {",
    "$host",
    "a$b",
    "$(reboot)",
    "`reboot`",
    "a; } server { listen 80; }",
    "x{ include /etc/passwd; }",
    "a\x00",
]
_REFUSED_IN_REGEX = re.compile(r"[\"'`\x00-\x1f]|\$(?![|)]|\Z)")


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("field", validate.FIELDS)
@pytest.mark.parametrize("match", validate.MATCHES)
def test_an_injection_attempt_in_any_condition_is_refused_or_stays_inside_its_token(
    payload: str, field: str, match: str
) -> None:
    conds = (
        [("path", "^/ok"), (field, payload, match)]
        if field != "path"
        else [(field, payload, match)]
    )
    try:
        when = validate.conditions(conds)
    except UsageError:
        if match == "regex" and field != "method":
            assert _REFUSED_IN_REGEX.search(payload), payload
        return
    assert field != "method"  # a method is letters only
    # Accepted: a regex without quotes, control characters or a stray $ (; { } are harmless
    # inside the quoted token), or an exact pattern that is rendered as \xHH escapes.
    assert match == "exact" or not _REFUSED_IN_REGEX.search(payload)
    assert match == "regex" or payload.isprintable()
    state = cs.add_filter(
        ControlState(), when=cs.conditions(list(when)), action=403, reason="", by="a", at=""
    )
    assert_safe(state)
    assert state_from_json(state_to_json(state)) == state


OLD_STATE_FILE = """\
{
  "version": 7,
  "updated_by": "alice",
  "updated_at": "2026-11-24T15:00:00Z",
  "maintenance": {"on": false, "allow": [], "message": ""},
  "rate_limit": {"rate": null, "burst": 0, "key": "ip"},
  "filters": [
    {"id": "f1", "field": "path", "pattern": "^/wp-", "match": "regex", "action": 403, \
"reason": "scanner", "added_by": "alice", "added_at": "2026-11-24T15:00:00Z"},
    {"id": "f2", "field": "method", "pattern": "PROPFIND", "match": "exact", "action": 444, \
"reason": "", "added_by": "bob", "added_at": "2026-11-24T15:01:00Z"}
  ],
  "blocks": []
}
"""


def test_a_state_file_written_before_filters_had_conditions_still_loads() -> None:
    state = state_from_json(OLD_STATE_FILE)
    assert [f.describe() for f in state.filters] == ["path ~ ^/wp-", "method = PROPFIND"]
    assert state.filters[1].when == (cs.Condition("method", "PROPFIND", "exact"),)
    assert (state.filters[0].field, state.filters[0].pattern, state.filters[0].match) == (
        "path",
        "^/wp-",
        "regex",
    )
    again = state_from_json(state_to_json(state))
    assert again == state
    # Written back with "when", and the flat keys kept for a one-condition filter.
    d = cs.filter_dict(again.filters[0])
    assert d["field"] == "path" and d["when"] == [
        {"field": "path", "pattern": "^/wp-", "match": "regex"}
    ]


def test_a_filter_with_several_conditions_is_written_with_when_only() -> None:
    when = cs.conditions([("user_agent", "curl/8.0", "exact"), ("path", r"^/x\.php$")])
    state = cs.add_filter(ControlState(), when=when, action=444, reason="r", by="a", at="")
    f = state.filters[0]
    assert f.describe() == r"path ~ ^/x\.php$ and user_agent = curl/8.0"
    assert f.field == "path"  # the first condition, for callers that show one
    d = cs.filter_dict(f)
    assert "field" not in d and len(d["when"]) == 2
    assert state_from_json(state_to_json(state)) == state
    # The same set of conditions, in any order, replaces the filter and keeps its id.
    again = cs.add_filter(
        state, when=tuple(reversed(when)), action=403, reason="new", by="b", at=""
    )
    assert [(x.id, x.action, x.reason) for x in again.filters] == [("f1", 403, "new")]
    other = cs.add_filter(
        again,
        field_name="path",
        pattern=r"^/x\.php$",
        match="regex",
        action=403,
        reason="",
        by="b",
        at="",
    )
    assert [x.id for x in other.filters] == ["f1", "f2"]


def test_a_hand_edited_filter_is_held_to_the_same_rules() -> None:
    good = state_to_json(
        cs.add_filter(
            ControlState(),
            when=cs.conditions([("path", "^/x"), ("referer", "^$")]),
            action=403,
            reason="",
            by="a",
            at="",
        )
    )
    assert state_from_json(good).filters[0].when[1].field == "referer"
    for evil, message in [
        (good.replace('"^/x"', '"^/x\\"; }"'), "double quote"),
        (good.replace('"^$"', '"$host"'), "end anchor"),
        (good.replace('"referer"', '"path"'), "at most one condition per field"),
        (good.replace('"when": [', '"field": "path", "when": ['), "disagree"),
        (good.replace('"when": [', '"when": [{"field": "method", "pattern": "GET"}, '), None),
        (
            good.replace(
                '"when": [',
                '"when": [{"field": "method", "pattern": "GET"}, '
                '{"field": "user_agent", "pattern": "x"}, ',
            ),
            "one to three",
        ),
        (
            good.replace('"when": [', '"when": [{"field": "method", "pattern": "G T"}, '),
            "HTTP method",
        ),
    ]:
        if message is None:
            assert len(state_from_json(evil).filters[0].when) == 3
            continue
        with pytest.raises(UsageError, match=re.escape(message)):
            state_from_json(evil)


def test_a_hand_edited_state_file_is_held_to_the_same_rules() -> None:
    good = state_to_json(ControlState(version=3))
    assert state_from_json(good).version == 3
    evil = good.replace('"blocks": []', '"blocks": [{"target": "1.2.3.4; }"}]')
    with pytest.raises(UsageError, match="not an IP address"):
        state_from_json(evil)
    with pytest.raises(UsageError, match="unknown keys"):
        state_from_json(good.replace('"version": 3,', '"version": 3, "include": 1,'))


# --- properties --------------------------------------------------------------------------------

NASTY = st.text(
    alphabet=st.sampled_from(list("0123456789abcdefABCDEF:./ ;{}\"'$`\\\n\t\r()[]|*+?^x%#~é\x00")),
    max_size=40,
)
VALID_LOOKING = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["203.0.113.0/24", "2001:db8::/48", "10r/s", "600 r/m", "ip", "subnet"]),
    st.sampled_from(["^/wp-", "(?i)bot", r"\.php$", "GET", "403", "444", "Back soon"]),
)
ANY_TEXT = st.one_of(st.text(max_size=60), NASTY, VALID_LOOKING)

# The grammar of the rendered nginx files: every line must match one of these.
_NAME = r"\$opsc_[a-z0-9_]+"
_KEY = r'"~\*?[\x20\x21\x23-\x26\x28-\x5f\x61-\x7e]+"'
_LINES = [
    r"",
    r"# opsconsole controls of service [A-Za-z0-9_-]+, state version [0-9]+\.",
    r"# Generated by opsconsole from the state file beside it: do not edit\.",
    rf"geo \$remote_addr {_NAME} \{{",
    r"    default [01];",
    r"    [0-9a-f:./]+ [01];",
    rf"map (\$uri|\$http_user_agent|\$request_method|\$http_referer|\$remote_addr) {_NAME} \{{",
    rf'map "({_NAME})+" {_NAME} \{{',
    r"    default (0|\$remote_addr);",
    rf"    {_KEY} 1;",
    r'    "" 1;',
    r'    "~\^[.1]*1" (403|444);',
    r'    "~[^"]*" "[$0-9:]+";',
    r"}",
    rf"if \({_NAME}( = (403|444))?\) \{{",
    r"    return (403|444|503);",
    r"error_page 503 @opsc_[a-z0-9_]+;",
    r"location @opsc_[a-z0-9_]+ \{",
    r"    if \(\$request_method !~ \^\(GET\|HEAD\)\$\) \{",
    r"        return 503;",
    r"    \}",
    r"    root /[A-Za-z0-9._/+@=,:~-]*;",
    r"    try_files /[A-Za-z0-9_-]+\.maintenance\.html =503;",
    r"    default_type text/html;",
    r"    charset utf-8;",
    r"    add_header Retry-After [0-9]+ always;",
    r'    add_header Cache-Control "no-store" always;',
    rf"limit_req_zone (\$binary_remote_addr|{_NAME}) zone=opsc_[a-z0-9_]+:32m rate=[0-9]+r/[sm];",
    r"limit_req zone=opsc_[a-z0-9_]+( burst=[0-9]+)? nodelay;",
    r"limit_req_status 429;",
]
_GRAMMAR = re.compile("|".join(f"(?:{x})" for x in _LINES))


def assert_safe(state: ControlState) -> None:
    files = render(state, "shop-eu", "/etc/nginx/opsconsole")
    for text in (files.http_conf, files.server_conf):
        for line in text.split("\n"):
            assert _GRAMMAR.fullmatch(line), f"unexpected line {line!r}"
    page = files.maintenance_html
    body = page.split("<p>", 1)[1].split("</p>", 1)[0]
    assert not set(body) & set("<>\"'"), body
    assert html.unescape(body) == (state.maintenance.message or html.unescape(body))


@settings(max_examples=300)
@given(ANY_TEXT)
def test_any_string_is_a_valid_target_or_refused(text: str) -> None:
    try:
        value = validate.target(text)
    except UsageError:
        event("refused")
        return
    event("accepted")
    assert re.fullmatch(r"[0-9a-f:./]+", value)
    assert str(ipaddress.ip_network(value)) in (value, f"{value}/32", f"{value}/128")


@settings(max_examples=300)
@given(ANY_TEXT)
def test_any_string_is_a_safe_regex_token_or_refused(text: str) -> None:
    try:
        value = validate.regex(text)
    except UsageError:
        event("refused")
        return
    event("accepted")
    re.compile(value)
    assert re.fullmatch(r'"~\*?[\x20\x21\x23-\x26\x28-\x5f\x61-\x7e]+"', regex_token(value))
    assert not re.search(r"\$[^|)]", value)


@settings(max_examples=300)
@given(ANY_TEXT)
def test_any_string_is_a_safe_exact_token_or_refused(text: str) -> None:
    try:
        value = validate.pattern("path", "exact", text)
    except UsageError:
        event("refused")
        return
    event("accepted")
    assert re.fullmatch(r'"~\^([A-Za-z0-9_/-]|\\\\x[0-9a-f]{2})*\$"', exact_token(value))


@settings(max_examples=200)
@given(
    st.one_of(st.sampled_from(["10r/s", "600r/m", "off"]), ANY_TEXT),
    st.one_of(st.sampled_from(["ip", "subnet"]), ANY_TEXT),
    st.one_of(st.integers(-5, 10**6), ANY_TEXT),
)
def test_any_rate_burst_or_key_is_valid_or_refused(rate: str, key: str, burst: object) -> None:
    try:
        e = edits.limit(rate, burst=burst, key=key)  # type: ignore[arg-type]
    except UsageError:
        event("refused")
        return
    event("accepted")
    assert_safe(e.apply(ControlState(), "alice", NOW))


@settings(max_examples=200)
@given(st.lists(ANY_TEXT, max_size=3), ANY_TEXT, st.lists(ANY_TEXT, max_size=2), ANY_TEXT)
def test_any_block_or_maintenance_input_renders_safely_or_is_refused(
    targets: list[str], reason: str, allow: list[str], message: str
) -> None:
    state = ControlState()
    builds: tuple[Callable[[], edits.Edit], ...] = (
        lambda: edits.block(targets, reason=reason),
        lambda: edits.maintenance(True, allow=allow, message=message),
    )
    for build in builds:
        try:
            e = build()
        except UsageError:
            event("refused")
            continue
        event("accepted")
        state = e.apply(state, "alice", NOW)
    assert_safe(state)
    assert state_from_json(state_to_json(state)) == state


@settings(max_examples=300)
@given(
    st.sampled_from(["path", "user_agent", "method"]),
    st.sampled_from(["regex", "exact"]),
    ANY_TEXT,
    st.one_of(st.sampled_from([403, 444, "403", "444"]), ANY_TEXT),
    ANY_TEXT,
)
def test_any_filter_input_renders_safely_or_is_refused(
    field: str, match: str, pattern: str, action: object, reason: str
) -> None:
    try:
        e = edits.add_filter(field, pattern, match=match, action=action, reason=reason)  # type: ignore[arg-type]
    except UsageError:
        event("refused")
        return
    event("accepted")
    state = e.apply(ControlState(), "alice", NOW)
    assert_safe(state)
    assert state_from_json(state_to_json(state)) == state


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(validate.FIELDS),
            ANY_TEXT,
            st.sampled_from(["regex", "exact", None]),
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([403, 444]),
)
def test_any_multi_condition_filter_input_renders_safely_or_is_refused(
    items: list[tuple[str, str, str | None]], action: int
) -> None:
    try:
        when = cs.conditions(items)
    except UsageError:
        event("refused")
        return
    event(f"accepted with {len(when)} conditions")
    assert 1 <= len(when) <= 3 and len({c.field for c in when}) == len(when)
    state = cs.add_filter(ControlState(), when=when, action=action, reason="", by="a", at="")
    state = cs.add_filter(state, when=when[:1], action=403, reason="", by="a", at="")
    assert_safe(state)
    assert state_from_json(state_to_json(state)) == state


def test_the_same_state_file_from_several_servers_is_validated_once() -> None:
    """Ten servers with byte-identical (large) state files cost one parse, and the state is the
    same (immutable) object; a different file is parsed afresh, a bad one refused every time."""
    state = ControlState(blocks=tuple(cs.Block(f"10.0.{i >> 8}.{i & 255}") for i in range(500)))
    text = state_to_json(state).encode()
    first = state_from_json(text)
    assert first == state and state_from_json(bytes(bytearray(text))) is first
    other = state_from_json(state_to_json(ControlState(version=2)).encode())
    assert other.version == 2 and other is not first
    for _ in range(2):
        with pytest.raises(UsageError, match="not valid JSON"):
            state_from_json(b"{")


def test_work_shared_by_servers_with_the_same_state_is_done_once_and_never_mixed_up() -> None:
    """apply_on_server's derived work (edit, checks, diff, rendered files) is kept for the
    last arguments by identity: the same parsed state on ten servers renders once, an equal
    state that is another object (or another state) is worked out afresh."""
    from opsconsole.controls import apply

    calls: list[int] = []

    def work(state: ControlState, cdir: str) -> int:
        calls.append(1)
        return len(state.blocks)

    last = apply._Last(work)
    a = ControlState(blocks=(cs.Block("10.0.0.1"),))
    same_text = state_from_json(state_to_json(a).encode())
    assert [last(same_text, "/etc/x") for _ in range(10)] == [1] * 10 and len(calls) == 1
    assert last(same_text, "/etc/" + "x") == 1 and len(calls) == 1  # equal text: same work
    b = ControlState(blocks=(cs.Block("10.0.0.1"), cs.Block("10.0.0.2")))
    assert last(b, "/etc/x") == 2 and len(calls) == 2
    assert last(ControlState(blocks=a.blocks), "/etc/x") == 1 and len(calls) == 3
