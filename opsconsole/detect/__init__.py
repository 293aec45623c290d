"""What separates the attack from real visitors (DESIGN §10): ``suggest``'s analysis.

:func:`analyze` compares a window of a service's requests with its baseline and returns an
:class:`Analysis`: a status, what it saw in words, and ranked :class:`Suggestion` rules (blocks,
filters of one to three conditions, rate limits) with the recommended set marked, each measured
by replay with nginx's matching.  The requests come in a :class:`RequestLog` (a history read, or
the live console's buffer).  Called by the session layer in the fleet's worker thread.  Never
imports a front end.

Modules: ``table`` (the requests, column by column), ``values`` (what a path, user agent or
referer says), ``shapes`` (the shapes of invented paths), ``rules`` (candidate rules and their
replay), ``prefixes`` (which networks to block), ``analysis`` (the whole comparison).
"""

from .analysis import Analysis, Suggestion, analyze
from .rules import Condition, Rule
from .table import RequestLog, Table, detect_format

__all__ = [
    "Analysis",
    "Condition",
    "RequestLog",
    "Rule",
    "Suggestion",
    "Table",
    "analyze",
    "detect_format",
]
