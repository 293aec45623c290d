"""Notifications of changes to webhooks (issue 10): Slack, Mattermost, Matrix hookshot…

The optional ``[notify]`` config section lists incoming-webhook URLs; :class:`Notifier` posts
each of them one JSON message per intent — every applied change, confirm, rollback, expiry of
``--ttl`` blocks, automatic revert and recovery stage — with a ``text`` line for people and the
audit event's fields (:mod:`.message`).  Delivery is asynchronous and retried
(:mod:`.notifier`); a webhook that fails never blocks or fails a change, and its failures are
kept for display (:meth:`Notifier.errors`) and in a state file that :func:`recent_failures`
reads (``opsconsole check``).  Webhook URLs are secrets, shown only as
:func:`opsconsole.config.shown_url` shows them.

Part of the core: imports the config, the controls' types and (in :mod:`.delivery` only) httpx;
never a front end.
"""

from .failures import DeliveryFailure, default_path, recent_failures
from .message import Kind, Message, summarize
from .notifier import EXIT_WAIT, Notifier

__all__ = [
    "EXIT_WAIT",
    "DeliveryFailure",
    "Kind",
    "Message",
    "Notifier",
    "default_path",
    "recent_failures",
    "summarize",
]
