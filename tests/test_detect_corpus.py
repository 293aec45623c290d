"""``suggest``'s analysis on real-world logs nobody here wrote (``../shared/corpus``).

The honeynet's Apache logs (2004) hold three attacks of different kinds; around each one's peak,
with the hours before as baseline, the analysis must find the rule an engineer would write: the
one address of a single-host flood, the WebDAV method of a worm, the scanner's user agent.  And
no file of the corpus — garbage bytes, CRLF, truncated lines, syslog-wrapped lines — may make it
fail.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from opsconsole.detect import RequestLog, analyze

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
HONEYNET = CORPUS / "honeynet-2004-apache"


def around_the_peak(path: Path) -> tuple[RequestLog, float]:
    log = RequestLog("combined")
    log.add_chunk(path.read_bytes())
    per_minute = Counter(t // 60 for t in log.cols["t"])
    peak = max(per_minute, key=lambda m: per_minute[m]) * 60
    return log, peak + 300


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("access_log.1", "block 211.75.221.105"),
        ("access_log.24", "refuse method PROPFIND"),
        ("access_log.25", "refuse user agent ~ ^Mozilla/4\\.75\\ \\(Nikto/1\\.32\\ \\)$"),
    ],
)
def test_each_real_attack_gets_the_rule_an_engineer_would_write(name: str, rule: str) -> None:
    log, end = around_the_peak(HONEYNET / name)
    result = analyze(log, "honeynet", now=end, window=600, baseline=6 * 3600)
    assert result.status == "ok", result.reason
    assert [s.rule.describe() for s in result.recommended] == [rule]
    assert result.recall >= 0.95 and result.collateral <= 0.005


def test_no_file_of_the_corpus_makes_the_analysis_fail() -> None:
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".md", ".tsv")]
    assert len(files) > 50
    for path in files:
        log = RequestLog("combined")
        log.add_chunk(path.read_bytes())
        result = analyze(log, "corpus")
        assert result.status in ("ok", "no-anomaly", "not-enough-data"), path
        assert result.status != "not-enough-data" or result.reason, path
