"""Webhook delivery of alert notifications: never blocking, retried, deduplicated.

:meth:`Webhooks.send` only queues; one thread per URL posts each notification as a
JSON body, in order. A failed post (no connection, a timeout, HTTP 408, 429 or 5xx)
is retried with exponential backoff and jitter for up to ``give_up_s``; any other
answer is final and logged. A notification (its ``alert_id`` and ``status``) is sent
once per URL however often it is queued. Each URL gets at most ``per_minute`` posts
a minute after a burst of a sixth of that (more wait their turn; none is dropped). A
receiver that hangs holds only its own queue, for ``timeout_s`` a try.

>>> hooks = Webhooks([])              # no URL: every call is a no-op
>>> hooks.send({"alert_id": "a", "status": "firing"}), hooks.flush(0.1)
(None, True)
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from operators.errors import ConfigError

__all__ = ["Webhooks", "check_url"]

log = logging.getLogger("lucidstream.alerts")
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def check_url(url: str) -> str:
    """A webhook URL, checked: http or https with a host.

    >>> check_url("http://127.0.0.1:9000/hook")
    'http://127.0.0.1:9000/hook'
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"alert webhook {url!r} is not an http(s) URL with a host; "
                          "give e.g. --alert-webhook https://hooks.example.com/lucidstream")
    return url


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}" \
           f"{parts.path}"


class _Sender(threading.Thread):
    def __init__(self, url: str, timeout_s: float, give_up_s: float, per_minute: int,
                 max_backoff_s: float) -> None:
        super().__init__(name=f"lucidstream-webhook-{_redact(url)}", daemon=True)
        self.url, self.safe_url = url, _redact(url)
        self.timeout_s, self.give_up_s, self.max_backoff_s = timeout_s, give_up_s, max_backoff_s
        # a token bucket: a burst of ``per_minute / 6`` at once, then ``per_minute``
        self.per_s, self.burst = per_minute / 60.0, max(1.0, per_minute / 6)
        self._tokens, self._filled_at = self.burst, time.monotonic()
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.sent: set[tuple[str, str]] = set()
        self.queued = 0
        self.delivered = 0
        self.failed = 0
        self.skipped = 0  # already sent
        self.attempts = 0
        self._stopping = threading.Event()

    def put(self, body: dict[str, Any]) -> None:
        self.queued += 1
        self.queue.put(body)

    @property
    def pending(self) -> int:
        """Queued or in flight, not yet delivered or given up."""
        return self.queued - self.delivered - self.failed - self.skipped

    def run(self) -> None:
        while True:
            body = self.queue.get()
            try:
                if body is None:
                    return
                key = (str(body.get("alert_id")), str(body.get("status")))
                if key in self.sent:
                    self.skipped += 1
                elif self._deliver(body):
                    self.sent.add(key)
            finally:
                self.queue.task_done()

    def settled(self, deadline: float) -> bool:
        """Wait until nothing is queued or in flight, or ``deadline`` (monotonic)."""
        done = self.queue.all_tasks_done
        with done:
            while self.queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                done.wait(left)
        return True

    def _deliver(self, body: dict[str, Any]) -> bool:
        data = json.dumps(body, default=str).encode()
        first = time.monotonic()
        backoff = 0.5
        while not self._stopping.is_set():
            self._take_token()
            self.attempts += 1
            problem = self._post(data)
            if problem is None:
                self.delivered += 1
                return True
            final = not problem.startswith("retry")
            if final or time.monotonic() - first > self.give_up_s:
                self.failed += 1
                log.error("event=alert_not_delivered webhook=%s alert_id=%s status=%s "
                          "error=%s", self.safe_url, body.get("alert_id"), body.get("status"),
                          problem)
                return False
            log.warning("event=alert_retry webhook=%s alert_id=%s error=%s next_in_s=%.1f",
                        self.safe_url, body.get("alert_id"), problem, backoff)
            self._stopping.wait(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self.max_backoff_s)
        self.failed += 1
        log.error("event=alert_not_delivered webhook=%s alert_id=%s status=%s error=stopped "
                  "before the webhook took it (raise LUCIDSTREAM_ALERT_FLUSH_S to wait longer)",
                  self.safe_url, body.get("alert_id"), body.get("status"))
        return False

    def _take_token(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._filled_at) * self.per_s)
        self._filled_at = now
        if self._tokens < 1:
            self._stopping.wait((1 - self._tokens) / self.per_s)
            self._tokens, self._filled_at = 1.0, time.monotonic()
        self._tokens -= 1

    def _post(self, data: bytes) -> str | None:
        request = urllib.request.Request(self.url, data=data, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "lucidstream-alerts"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                answer.read()
            return None
        except urllib.error.HTTPError as exc:
            kind = "retry" if exc.code in _RETRY_STATUS else "final"
            return f"{kind}: HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:  # refused, timed out, reset
            reason = getattr(exc, "reason", exc)
            return f"retry: {reason}"

    def stop(self) -> None:
        self._stopping.set()
        self.queue.put(None)


class Webhooks:
    """Deliver notifications to every URL in ``urls``, off the caller's thread."""

    def __init__(self, urls: Sequence[str], timeout_s: float = 5.0, give_up_s: float = 900.0,
                 per_minute: int = 120, max_backoff_s: float = 30.0) -> None:
        self._senders = [_Sender(check_url(u), timeout_s, give_up_s, per_minute,
                                 max_backoff_s) for u in urls]
        for sender in self._senders:
            sender.start()

    def __bool__(self) -> bool:
        return bool(self._senders)

    def send(self, body: dict[str, Any]) -> None:
        """Queue ``body`` for every URL; returns at once."""
        for sender in self._senders:
            sender.put(body)

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every queued notification to be settled."""
        deadline = time.monotonic() + timeout_s
        return all(sender.settled(deadline) for sender in self._senders)

    def close(self, timeout_s: float = 10.0) -> bool:
        """Flush for up to ``timeout_s``, then stop the senders; whether everything was
        settled. What was not is counted (``unsettled``) and logged, never waited for
        past the timeout: a hung receiver does not hold the process."""
        settled = self.flush(timeout_s)
        for sender in self._senders:
            sender.stop()
        for sender in self._senders:
            sender.join(0.2)
            if sender.pending:
                log.error("event=alerts_not_settled webhook=%s count=%d: the webhook did not "
                          "take them within %.0f s (LUCIDSTREAM_ALERT_FLUSH_S)",
                          sender.safe_url, sender.pending, timeout_s)
        return settled

    def stats(self) -> dict[str, int]:
        return {"delivered": sum(s.delivered for s in self._senders),
                "failed": sum(s.failed for s in self._senders),
                "attempts": sum(s.attempts for s in self._senders),
                "pending": sum(s.pending for s in self._senders)}
