"""A manual override reaches a running flow through the control file."""

from __future__ import annotations

import time

from operators.ids import decision_id
from tests.conftest import cli, query_scalar
from tests.watch import Watched


def test_override_is_obeyed_within_2s_recorded_and_cleared_and_answers_reach_the_flow(
        tmp_path):
    dsn = f"chdb://{tmp_path}/store"
    run = Watched("run", "--duration", "14", "--rate", "2000", "--store", dsn)
    run.wait_for(lambda: run.events() > 2_000)
    asked = time.time() * 1000  # the CLI writes the file between asked and set_at
    assert cli("mode", "set", "CONSERVATIVE", "--reason", "storm drill", "--who", "ops",
               "--store", dsn).returncode == 0
    set_at = time.time() * 1000
    time.sleep(2)
    # a decision made under the override (50 robots: one tick of seq per 50 events),
    # answered while the flow holds the embedded store
    seq = run.events() // 50
    escalated = decision_id("robot-007", "motion", seq, 0, "")
    answered = cli("escalations", "approve", escalated, "--who", "ops", "--store", dsn)
    assert answered.returncode == 0 and "handed to the flow" in answered.stdout
    time.sleep(2)
    asked_clear = time.time() * 1000
    assert cli("mode", "clear", "--who", "ops", "--store", dsn).returncode == 0
    cleared_at = time.time() * 1000
    assert run.finish() == 0, "\n".join(line for _, line in run.lines[-10:])

    # the clear lands on the automatic mode: NORMAL, or REACTIVE_ONLY on a loaded machine
    changes = query_scalar(dsn, "SELECT countIf(to_mode = 'CONSERVATIVE' AND "
                                "reason LIKE 'override by ops%'), "
                                "countIf(reason LIKE 'override cleared by ops%'), count() "
                                "FROM mode_changes FINAL WHERE trigger = 'override'")
    assert changes == "1,1,2"  # once for the process: every shard applies the one board
    first, last = query_scalar(dsn, "SELECT toUnixTimestamp64Milli(min(decided_at)), "
                                    "toUnixTimestamp64Milli(max(decided_at)) FROM decisions "
                                    "FINAL WHERE mode = 'CONSERVATIVE'").split(",")
    assert asked <= int(first) <= set_at + 2_000
    assert asked_clear - 2_000 <= int(last) <= cleared_at + 2_000
    executed = query_scalar(dsn, "SELECT count() FROM decisions FINAL "
                                 "WHERE mode = 'CONSERVATIVE' AND NOT escalated "
                                 "AND path != 'canary'")  # probes are never executed
    assert executed == "0"  # nothing acted on autonomously while the override held
    after = query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE mode = 'NORMAL' "
                              f"AND toUnixTimestamp64Milli(decided_at) > {cleared_at + 2_000}")
    assert int(after) > 0
    state = query_scalar(dsn, "SELECT status, responder, mode FROM escalations FINAL "
                              f"WHERE decision_id = '{escalated}'")
    assert state == "approved,ops,CONSERVATIVE"  # recorded by the flow that held the store
    assert not list((tmp_path / "store-control" / "answers").glob("*.json"))
