"""Labeled traffic scenarios for the lab's sites: the ground truth ``suggest`` is measured on.

Each scenario is a baseline of ordinary traffic followed by a window that holds the scenario's
event, with a label on every request (attack or not, and which class of client sent it).  Used by
``bench/gen_scenario.py`` (log files for benchmarks), by tests, and meant for the lab's live
traffic generator (pace :func:`generate`'s requests by their ``time`` and send each to its
``service``; see :func:`replay_headers`).  Pure Python, standard library only, deterministic per
seed; nothing here opens a socket or starts a process.  Public API::

    for req in generate("low-and-slow", seed=3, scale=0.1):
        req.time, req.client_ip, req.target, req.status, req.attack, req.actor
    line = combined_line(req)            # what nginx would write for it
    write_log("scanner", "access.log", "labels.tsv", seed=2)
    lab_requirements()                   # what the lab's nginx must serve for a faithful replay

Real-visitor classes present in every scenario (the ``actor`` of non-attack requests):
:data:`REAL_ACTORS`.  An attack's requests carry the scenario's name as ``actor``.

Replaying into the lab (live traffic): ``generate(name, start=time.time(), baseline=B, window=W,
scale=small, services=lab_services)``; sleep until each ``req.time`` and send ``req.method`` and
``req.target`` to the lab URL of ``req.service`` with :func:`replay_headers`.  Send the target
byte for byte (``http.client``'s ``putrequest`` does; httpx normalises ``/../`` and quotes ``"``
unless given ``extensions={"target": req.target.encode()}``), and serve
:func:`lab_requirements` first, or the forge's views and the extra files answer 404.  Requests
labeled 400 are rejected by nginx before ``realip`` runs: the lab logs them from 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from .catalog import DEFAULT_START, SCENARIOS, Scenario, generate
from .content import sites
from .core import LabeledRequest
from .logfile import Summary, combined_line, escape, write_files
from .sites import LabRequirements, Site, requirements

REAL_ACTORS = (
    "browser",
    "search-crawler",
    "uptime-monitor",
    "feed-reader",
    "link-preview",
    "background-scan",
    "api-client",
    "package-manager",
    "git-client",
)
"""Classes of real clients; ``flash-crowd`` visitors are real too (only in that scenario).
``background-scan`` is the internet's constant probing, present in every baseline: not the
run's attack (it is the same before and during the window)."""


def write_log(
    name: str,
    path: str | PathLike[str],
    labels_path: str | PathLike[str],
    *,
    split_dir: str | PathLike[str] | None = None,
    seed: int = 1,
    baseline: float = 1800.0,
    window: float = 600.0,
    scale: float = 1.0,
    start: float | None = None,
    services: Sequence[str] | None = None,
) -> Summary:
    """Write scenario ``name`` as a ``combined`` access log and its labels.

    The labels file is TSV without a header, one row per log line: line number (from 1), 1 for
    an attack request or 0, actor, service.  With ``split_dir``, each site's requests also go to
    ``<service>.access.log`` and ``<service>.labels.tsv`` there (line numbers per file).
    """
    requests = generate(
        name,
        seed=seed,
        baseline=baseline,
        window=window,
        scale=scale,
        start=start,
        services=services,
    )
    chosen = list(services) if services is not None else list(sites())
    split = Path(split_dir) if split_dir is not None else None
    return write_files(requests, name, Path(path), Path(labels_path), split, chosen)


def lab_requirements() -> dict[str, LabRequirements]:
    """Per lab site: the files and ``location`` blocks its nginx needs beyond the lab's catalog
    so that replaying any scenario over HTTP answers the statuses of the labels."""
    return {name: requirements(site) for name, site in sites().items()}


def replay_headers(req: LabeledRequest, last_modified: str | None = None) -> dict[str, str]:
    """HTTP headers that make the lab's nginx log ``req`` as labeled: the client address in
    ``X-Forwarded-For`` (trusted from 127.0.0.1 only), the user agent and referer, and for a
    304 the target's ``Last-Modified`` as ``If-Modified-Since`` (nginx wants it exact)."""
    headers = {"X-Forwarded-For": req.client_ip}
    if req.user_agent:
        headers["User-Agent"] = req.user_agent
    if req.referer:
        headers["Referer"] = req.referer
    if req.status == 304 and last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


__all__ = [
    "DEFAULT_START",
    "REAL_ACTORS",
    "SCENARIOS",
    "LabRequirements",
    "LabeledRequest",
    "Scenario",
    "Site",
    "Summary",
    "combined_line",
    "escape",
    "generate",
    "lab_requirements",
    "replay_headers",
    "sites",
    "write_log",
]
