"""Alerts: rules over the store, a state machine, and webhooks on loopback.

Every receiver here is a real HTTP server on 127.0.0.1; its failures (HTTP 500, a
closed port, a hang) are real ones, caused on purpose.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections import Counter

import pytest

from flows.alerts import AlertEngine, Reading, Rule, evaluate, load_rules
from flows.notify import Webhooks
from operators.errors import ConfigError
from tests.conftest import cli


class Receiver:
    """A webhook receiver: fails the first ``fail`` posts with HTTP 500, or hangs."""

    def __init__(self, port: int = 0, fail: int = 0, hang_s: float = 0.0) -> None:
        self.got: list[dict] = []
        self.tries = 0
        self.fail, self.hang_s = fail, hang_s
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.tries += 1
                if outer.hang_s:
                    time.sleep(outer.hang_s)
                if outer.tries <= outer.fail:
                    self.send_response(500)
                else:
                    outer.got.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_firing_and_one_resolution_per_episode_with_a_stable_id():
    rule = Rule("stale", "stale", "warning", 60_000, "SELECT 1", above=10)
    engine = AlertEngine()
    seen = []
    for at, value in enumerate([0, 12, 15, 30, 4, 0, 11, 2]):
        seen += engine.step(rule, at * 5_000, {"fleet": Reading(float(value))})
    assert [(n.status, n.at_ms) for n in seen] == [
        ("firing", 5_000), ("resolved", 20_000), ("firing", 30_000), ("resolved", 35_000)]
    assert seen[0].alert_id == seen[1].alert_id != seen[2].alert_id == seen[3].alert_id
    again = AlertEngine().step(rule, 5_000, {"fleet": Reading(12.0)})
    assert again[0].alert_id == seen[0].alert_id  # the same episode, the same ID


def test_every_shipped_rule_runs_against_the_store(store):
    rules = load_rules()
    assert {"mode_degraded", "freshness_violations", "fallback_rate", "confidence_drop",
            "drift", "escalation_breaches", "canary_failures", "outage"} <= {
                r.name for r in rules}
    for rule in rules:
        assert evaluate(store, rule, 1_767_225_600_000) == {}, rule.name


@pytest.mark.parametrize(("text", "problem"), [
    ("rules: []", "version: 1"),
    ("version: 1\nrules:\n - {name: a, summary: b, severity: loud, window: 1s, sql: x, "
     "above: 1}", "severity must be one of"),
    ("version: 1\nrules:\n - {name: a, summary: b, severity: info, window: 1s, sql: x}",
     "exactly one of 'above' or 'below'"),
    ("version: 1\nrules:\n - {name: a, summary: b, severity: info, window: soon, sql: x, "
     "above: 1}", "is not a duration"),
    ("version: 1\nrules:\n - {name: a, severity: info, window: 1s, sql: x, above: 1}",
     "missing summary"),
])
def test_a_bad_rules_file_says_what_is_wrong(tmp_path, text, problem):
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_rules(path)


def test_a_receiver_that_fails_twice_gets_the_notification_once_on_the_third_try():
    receiver = Receiver(fail=2)
    hooks = Webhooks([receiver.url], max_backoff_s=0.5)
    body = {"alert_id": "a1", "status": "firing"}
    hooks.send(body)
    hooks.send(body)  # queued twice: sent once
    assert hooks.close(20)
    receiver.close()
    assert receiver.tries == 3 and receiver.got == [body]
    assert hooks.stats() == {"delivered": 1, "failed": 0, "attempts": 3, "pending": 0}


def test_nothing_is_lost_while_the_receiver_is_down_for_10_s():
    port = _free_port()
    hooks = Webhooks([f"http://127.0.0.1:{port}/hook"], max_backoff_s=2.0)
    sent = [{"alert_id": f"a{i}", "status": s} for i in range(3) for s in ("firing",
                                                                             "resolved")]
    for body in sent:
        hooks.send(body)
    time.sleep(10)  # nothing listens on the port: every try is refused
    receiver = Receiver(port=port)
    assert hooks.close(30)
    receiver.close()
    assert receiver.got == sent  # all of them, in order, once each


def test_a_hung_receiver_does_not_hold_the_sender_and_is_given_up_on_with_a_log(caplog):
    receiver = Receiver(hang_s=3.0)
    hooks = Webhooks([receiver.url], timeout_s=0.5, give_up_s=1.0, max_backoff_s=0.2)
    started = time.monotonic()
    for i in range(100):
        hooks.send({"alert_id": f"h{i}", "status": "firing"})
    assert time.monotonic() - started < 1.0  # queued, not sent, on the caller's thread
    assert not hooks.flush(0.5)
    started = time.monotonic()
    assert not hooks.close(3.0)
    assert time.monotonic() - started < 4.0  # the hung receiver does not hold the caller
    # stopped, the sender gives up what is left at once (its post in flight times out in
    # 0.5 s): read the counts and the log once it has, not while it still works
    at_close = hooks.stats()
    assert hooks.flush(5.0)
    stats = hooks.stats()
    receiver.close()
    # nothing silently lost: what was not delivered is counted and logged
    assert stats["delivered"] + stats["failed"] + stats["pending"] == 100
    assert stats["failed"] + stats["pending"] > 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("alert_not_delivered" in m for m in messages) == stats["failed"]
    assert not at_close["pending"] or any("alerts_not_settled" in m for m in messages)


def test_a_partition_tells_the_webhook_of_the_mode_and_freshness_each_once(tmp_path):
    events = tmp_path / "partition.jsonl"
    made = cli("simulate", "--scenario", "partition", "--out", str(events))
    assert made.returncode == 0, made.stderr
    receiver = Receiver()
    run = cli("replay", str(events), "--store", f"chdb://{tmp_path / 'store'}", "--quiet",
              "--alert-webhook", receiver.url)
    receiver.close()
    assert run.returncode == 0, run.stderr[-2000:]
    assert "0 failed" in run.stderr
    got = receiver.got
    counts = Counter((n["rule"], n["key"], n["status"]) for n in got)
    for rule in ("mode_degraded", "freshness_violations"):
        key = "global" if rule == "mode_degraded" else "fleet"
        assert counts[(rule, key, "firing")] == 1, got
        assert counts[(rule, key, "resolved")] == 1, got
    assert len({(n["alert_id"], n["status"]) for n in got}) == len(got)  # no repeats
    mode = [n for n in got if n["rule"] == "mode_degraded"]
    assert mode[0]["alert_id"] == mode[1]["alert_id"]
    assert mode[0]["at"] < mode[1]["at"] and mode[0]["flow"] == "fleet"
    stale = next(n for n in got if n["rule"] == "freshness_violations")
    assert stale["ids"] and stale["trace"] == f"lucidstream trace {stale['ids'][0]}"
    truth = json.loads(events.with_suffix(".truth.json").read_text())
    start_s = truth["start"]["event_ms"] / 1000
    from datetime import datetime

    fired_s = datetime.fromisoformat(mode[0]["at"].replace("Z", "+00:00")).timestamp()
    assert 0 <= fired_s - start_s <= 30  # the partition began; a 5 s step after it showed


def test_alerts_list_and_test_on_the_command_line():
    listed = cli("alerts", "list")
    assert listed.returncode == 0 and "mode_degraded" in listed.stdout
    receiver = Receiver()
    sent = cli("alerts", "test", "--webhook", receiver.url)
    receiver.close()
    assert sent.returncode == 0, sent.stderr
    assert [n["status"] for n in receiver.got] == ["test"]
    nowhere = cli("alerts", "test", "--webhook", f"http://127.0.0.1:{_free_port()}/x",
                  "--timeout", "1")
    assert nowhere.returncode == 1 and "did not take the test notification" in nowhere.stderr


def test_a_rule_whose_query_fails_is_logged_and_skipped_and_the_others_still_run(store, caplog):
    from flows.alert_loop import AlertLoop

    good = Rule("good", "always", "info", 0, "SELECT 'k' AS key, 1 AS value", above=0)
    bad = Rule("bad", "a typo", "info", 0, "SELEC 1 AS value", above=0)
    loop = AlertLoop(store, [bad, good], Webhooks([]))
    for at in (1_000, 6_000):
        assert loop._evaluate_all(at)
    assert [(n.rule, n.status) for n in loop.sent] == [("good", "firing")]
    failures = [r.getMessage() for r in caplog.records if "alert_rule_failed" in r.getMessage()]
    assert len(failures) == 1 and "rule=bad" in failures[0]  # logged once, then skipped
