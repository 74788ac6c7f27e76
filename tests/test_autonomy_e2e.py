"""The autonomy controls through the real CLI, flow and store."""

from __future__ import annotations

import json
import time

from flows.pipeline import shard_of
from tests.conftest import cli, query_scalar, with_outage
from tests.test_semantic_e2e import write
from tests.watch import Watched


def test_one_shards_outage_degrades_every_shard_within_2s_and_recovers_once(tmp_path):
    clean = tmp_path / "clean.jsonl"
    assert cli("simulate", "--out", str(clean), "--events", "24000", "--sources", "40",
               "--rate", "400").returncode == 0  # 60 s of simulated time
    events = [json.loads(line) for line in clean.read_text().splitlines()]
    # only the robots of shard 1 are cut off, from 20 s to 30 s
    lines = with_outage(events, lambda source: shard_of(source, 4) == 1, 20_000, 30_000)
    dsn = f"chdb://{tmp_path}/store"
    # batches of 1 s of pipeline time (400 events): a mode reaches every shard within one
    result = cli("replay", str(write(tmp_path / "b.jsonl", lines)), "--store", dsn, "-q",
                 "--batch", "400")
    assert result.returncode == 0, result.stderr

    changes = query_scalar(dsn, "SELECT groupArray((from_mode, to_mode, scope)) FROM "
                                "(SELECT * FROM mode_changes FINAL ORDER BY at)")
    assert changes.replace(" ", "") == ("\"[('NORMAL','REACTIVE_ONLY','global'),"
                                        "('REACTIVE_ONLY','NORMAL','global')]\"")
    degraded, recovered = (int(x) for x in query_scalar(
        dsn, "SELECT toUnixTimestamp64Milli(minIf(at, to_mode = 'REACTIVE_ONLY')), "
             "toUnixTimestamp64Milli(minIf(at, to_mode = 'NORMAL')) FROM mode_changes FINAL"
    ).split(","))
    shards = query_scalar(dsn, "SELECT uniqExact(CRC32(source_id) % 4) FROM decisions FINAL "
                               "WHERE mode = 'REACTIVE_ONLY' AND path != 'canary'")
    assert shards == "4"            # every shard applied the mode, not only shard 1
    late = query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE mode = 'NORMAL' AND "
                             f"toUnixTimestamp64Milli(decided_at) > {degraded + 2_000} AND "
                             f"toUnixTimestamp64Milli(decided_at) < {recovered}")
    assert late == "0"              # no shard still NORMAL 2 s of pipeline clock after
    modelled = query_scalar(dsn, "SELECT count() FROM decisions FINAL WHERE mode != 'NORMAL' "
                                 "AND (score IS NOT NULL OR path = 'slow') "
                                 "AND path != 'canary'")
    assert modelled == "0"          # nothing decided by the model while the mode forbade it
    canaries = query_scalar(dsn, "SELECT countIf(status = 'pass'), countIf(status = 'fail'), "
                                 "uniqExact(slot) FROM canary_results FINAL "
                                 "WHERE checks = 'rules'")
    assert canaries == "14,0,7"     # two rules canaries at 0, 10, ... 60 s of the replay


def test_flags_reach_a_running_flow_and_are_logged(tmp_path):
    dsn = f"chdb://{tmp_path}/store"
    run = Watched("run", "--duration", "10", "--rate", "2000", "--sources", "20",
                  "--store", dsn)
    run.wait_for(lambda: run.events() > 2_000)
    assert cli("flag", "set", "model", "off", "--source", "robot-003", "--reason",
               "lidar fault", "--who", "ops", "--store", dsn).returncode == 0
    set_at = time.time() * 1000
    shown = cli("flag", "show", "--store", dsn)
    assert "model      off for robot-003" in shown.stdout
    assert run.finish() == 0, "\n".join(line for _, line in run.lines[-10:])
    scored = query_scalar(dsn, "SELECT countIf(score IS NOT NULL) FROM decisions FINAL "
                               "WHERE source_id = 'robot-003' AND path = 'fast' AND "
                               f"toUnixTimestamp64Milli(decided_at) > {set_at + 2_000}")
    others = query_scalar(dsn, "SELECT countIf(score IS NOT NULL) FROM decisions FINAL "
                               "WHERE source_id = 'robot-004' AND path = 'fast' AND "
                               f"toUnixTimestamp64Milli(decided_at) > {set_at + 2_000}")
    assert scored == "0" and int(others) > 0
    logged = query_scalar(dsn, "SELECT name, state, who, reason FROM control_log FINAL "
                               "WHERE kind = 'flags'")
    assert logged == "model,off,ops,lidar fault"
