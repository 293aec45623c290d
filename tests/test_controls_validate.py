"""Operator input is refused with a clear message, or reaches the snippets only in a safe shape.

The examples are the ones an attacker or a tired operator would type; the properties throw random
strings at every validator and at every edit, and read the rendered files back line by line
against the grammar the renderer is allowed to produce.
"""

from __future__ import annotations

import html
import ipaddress
import re
from datetime import UTC, datetime

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from opsconsole.controls import edits, validate
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
    ],
)
def test_dangerous_regexes_are_refused_saying_why(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        validate.regex(value)


def test_exact_patterns_take_any_printable_text_and_methods_only_letters() -> None:
    assert validate.pattern("path", "exact", '/a"b;{}$') == '/a"b;{}$'
    assert validate.pattern("method", "exact", "PROPFIND") == "PROPFIND"
    with pytest.raises(UsageError, match="HTTP method"):
        validate.pattern("method", "exact", "GET;")


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
    rf"map (\$uri|\$http_user_agent|\$request_method|\$remote_addr) {_NAME} \{{",
    rf'map "({_NAME})+" {_NAME} \{{',
    r'    default ("");',
    r"    default (0|\$remote_addr);",
    rf"    {_KEY} (403|444);",
    r'    "~[^"]*" "[$0-9:]+";',
    r"}",
    rf"if \({_NAME}( = (403|444))?\) \{{",
    r"    return (403|444|503);",
    r"error_page 503 @opsc_[a-z0-9_]+;",
    r"location @opsc_[a-z0-9_]+ \{",
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
    for build in (
        lambda: edits.block(targets, reason=reason),
        lambda: edits.maintenance(True, allow=allow, message=message),
    ):
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
