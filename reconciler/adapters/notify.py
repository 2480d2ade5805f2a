"""Tell people about a decision: POST to generic webhooks and Slack incoming webhooks.

- A notification runs after the decision is already committed, so it must never undo or block
  that decision. `notify` never raises: each target gets a `Delivery` saying whether it worked,
  and the caller logs the ones that failed.
- All targets are posted at once, each in its own daemon thread, and `notify` waits for them
  at most `timeout` (plus a short grace). So a Slack outage or a slow webhook does not hold up
  the others or the reconcile loop. A thread still stuck when we stop waiting is abandoned, not
  joined.
- A Slack webhook URL is a credential: whoever has the path can post to the channel. Anything
  we return or say shows only `scheme://host/…`, and an error text that contains the URL or its
  path is cleaned before it is returned.
- Redirects are not followed. A webhook that moved answers 3xx, and that is a failed delivery
  someone should fix. Following it would send the payload somewhere nobody configured.
- Only the standard library is used (urllib). The proxy variables (HTTPS_PROXY, NO_PROXY) work
  as they do for other tools.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from ..core.release import NotificationTarget
from ..core.urls import redact_url as redact  # the one redactor: ConfigMaps and messages show the same

USER_AGENT = "sluice-reconciler"
_GRACE = 0.5  # seconds past `timeout` for a target's own timeout error to arrive first
_MAX_RESPONSE = 2_000  # characters of a response body kept in a failure's detail
_SLACK_FIELDS = 10
_SLACK_VALUE = 200  # characters per field value: the message stays short
_SLACK_SECTION = 3_000  # Slack's limit for one section's text


@dataclass(frozen=True)
class Delivery:
    target: str  # redacted: scheme://host/…
    ok: bool
    detail: str


def notify(targets: Iterable[NotificationTarget], summary: str, payload: Mapping[str, object],
           timeout: float = 5.0) -> list[Delivery]:
    """Post `payload` (JSON) to each webhook and `summary` with the payload's fields to each Slack
    target, concurrently. One Delivery per target, in the targets' order; never raises."""
    targets = list(targets)
    results: list[Delivery | None] = [None] * len(targets)

    def deliver(index: int, target: NotificationTarget) -> None:
        results[index] = _deliver(target, summary, payload, timeout)

    threads = [threading.Thread(target=deliver, args=(i, t), name=f"sluice-notify-{i}", daemon=True)
               for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + _GRACE
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [result if result is not None else
            Delivery(redact(target.url), False, f"no answer within {timeout:g} s (gave up waiting)")
            for target, result in zip(targets, results)]


def _deliver(target: NotificationTarget, summary: str, payload: Mapping[str, object],
             timeout: float) -> Delivery:
    shown = redact(target.url)
    try:
        if urlsplit(target.url).scheme not in ("http", "https"):
            return Delivery(shown, False, "only http and https URLs are supported")
        if target.kind == "slack":
            body = _slack_message(summary, payload)
        elif target.kind == "webhook":
            body = dict(payload)
        else:
            return Delivery(shown, False, f"unknown notification kind {target.kind!r}")
        return Delivery(shown, *_post(target.url, _json(body), timeout))
    except Exception as err:  # never raise: the decision is committed whatever happens here
        return Delivery(shown, False, _scrub(f"{type(err).__name__}: {err}", target.url))


def _post(url: str, body: bytes, timeout: float) -> tuple[bool, str]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, phrase = response.status, response.reason
            text = _read(response)
    except urllib.error.HTTPError as err:
        detail = f"HTTP {err.code} {err.reason}" + _suffix(_read(err))
        if 300 <= err.code < 400:
            detail += " (redirects are not followed: configure the new URL)"
        return False, _scrub(detail, url)
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, TimeoutError):
            return False, f"no answer within {timeout:g} s ({reason or 'timed out'})"
        return False, _scrub(f"connection failed: {reason}", url)
    except TimeoutError as err:  # a read that timed out after the connection was made
        return False, f"no answer within {timeout:g} s ({err or 'timed out'})"
    ok = 200 <= status < 300
    return ok, _scrub(f"HTTP {status} {phrase}" + _suffix(text), url)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(_NoRedirect)


def _read(response: Any) -> str:
    try:
        return response.read(_MAX_RESPONSE + 1).decode("utf-8", errors="replace")
    except Exception:  # the body is only for the detail; the status already says what happened
        return ""


def _suffix(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_RESPONSE:
        text = text[:_MAX_RESPONSE] + "…"
    return f": {text}" if text else ""


def _scrub(text: str, url: str) -> str:
    """Remove the URL and its secret parts from a message meant for logs."""
    parts = urlsplit(url)
    shown = redact(url)
    for secret in sorted({url, parts.path, parts.query, parts.netloc if "@" in parts.netloc else ""},
                         key=len, reverse=True):
        if len(secret) > 1:
            text = text.replace(secret, shown if secret == url else "…")
    return text


# --- message bodies --------------------------------------------------------------------------------

def _slack_message(summary: str, payload: Mapping[str, object]) -> dict[str, object]:
    """Slack's incoming-webhook shape: `text` (also the notification's preview) and mrkdwn blocks."""
    lines = [f"*{_slack_escape(str(key))}:* {_slack_escape(_short(value))}"
             for key, value in list(payload.items())[:_SLACK_FIELDS]]
    if len(payload) > _SLACK_FIELDS:
        lines.append(f"_…and {len(payload) - _SLACK_FIELDS} more fields_")
    blocks: list[dict[str, object]] = [_section(_slack_escape(summary))]
    if lines:
        blocks.append(_section("\n".join(lines)))
    return {"text": _slack_escape(summary), "blocks": blocks}


def _section(text: str) -> dict[str, object]:
    if len(text) > _SLACK_SECTION:
        text = text[:_SLACK_SECTION - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _short(value: object) -> str:
    if isinstance(value, (datetime, date, timedelta, Enum)):
        value = _json_default(value)
    text = value if isinstance(value, str) else _json(value).decode("utf-8")
    text = " ".join(text.split())
    return text if len(text) <= _SLACK_VALUE else text[:_SLACK_VALUE - 1] + "…"


def _slack_escape(text: str) -> str:
    """Slack reads `<...>` as links and mentions: escape the three control characters it defines."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _json(value: object) -> bytes:
    return json.dumps(value, default=_json_default, ensure_ascii=False).encode("utf-8")


def _json_default(value: object) -> object:
    """Decision payloads hold instants, durations and enums; anything else becomes its text."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)
