"""``lucidstream alerts``: the rules in force, and a test notification."""

from __future__ import annotations

import os
import time
import uuid

import click
from rich.console import Console
from rich.table import Table

from flows.alerts import DEFAULT_RULES, Notification, load_rules
from flows.notify import Webhooks
from operators.errors import InputError

out = Console(soft_wrap=True)
_RULES_HELP = "rules file [env LUCIDSTREAM_ALERT_RULES; default infra/alerts.yaml]"


@click.group()
def alerts() -> None:
    """Alert rules over the store, sent to webhooks by a running flow (--alert-webhook)."""


def _rules_path(rules: str | None) -> str:
    return rules or os.environ.get("LUCIDSTREAM_ALERT_RULES") or str(DEFAULT_RULES)


@alerts.command("list")
@click.option("--rules", default=None, help=_RULES_HELP)
def alerts_list(rules: str | None) -> None:
    """Show each rule: what it watches, its threshold, window and severity."""
    table = Table("rule", "severity", "fires when", "window", "what")
    for rule in load_rules(_rules_path(rules)):
        when = f"> {rule.above:g}" if rule.above is not None else f"< {rule.below:g}"
        table.add_row(rule.name, rule.severity, when,
                      f"{rule.window_ms / 1000:g} s" if rule.window_ms else "now",
                      rule.summary)
    out.print(table)


@alerts.command("test")
@click.option("--webhook", "webhooks", multiple=True, metavar="URL",
              help="where to send it [env LUCIDSTREAM_ALERT_WEBHOOK, space-separated]")
@click.option("--timeout", default=20.0, show_default=True, type=click.FloatRange(min=1),
              help="seconds to keep trying")
def alerts_test(webhooks: tuple[str, ...], timeout: float) -> None:
    """Send one test notification (status "test") to every webhook and report."""
    urls = (*webhooks, *os.environ.get("LUCIDSTREAM_ALERT_WEBHOOK", "").split())
    if not urls:
        raise InputError("no webhook: give --webhook URL or set LUCIDSTREAM_ALERT_WEBHOOK")
    now = int(time.time() * 1000)
    note = Notification(str(uuid.uuid4()), "test", "test", "info",
                        "a test notification from lucidstream alerts test", "test", 0.0, 0.0,
                        0.0, now, now)
    hooks = Webhooks(urls, give_up_s=timeout, max_backoff_s=5.0)
    hooks.send(note.payload())
    hooks.close(timeout + 5)
    stats = hooks.stats()
    print(f"sent to {len(urls)} webhook(s): {stats['delivered']} delivered, "
          f"{stats['failed']} failed after {stats['attempts']} attempt(s)")
    if stats["delivered"] < len(urls):
        raise InputError("a webhook did not take the test notification; see the log line "
                         "above for its error (set LUCIDSTREAM_LOG=INFO for each try)")
