"""The decision path against its recorded outcome (``tests/golden.py``): 200,000 fleet
events with a partition, a step and bad lines, replayed through the CLI, give the same
decision IDs, actions, paths, fresh flags and modes, the same alarms, mode changes and
dead letters as recorded. A change of decisions is re-recorded only when intended, and
the commit that re-records names the difference."""

from __future__ import annotations

import json

from tests.golden import GOLDEN, replay


def test_the_golden_replay_decides_as_recorded(tmp_path):
    expected = json.loads(GOLDEN.read_text())
    found = replay(tmp_path)
    differences = [f"{what}: recorded {expected[what]}\n  now {found.get(what)}"
                   for what in expected if found.get(what) != expected[what]]
    assert not differences, "\n".join(differences)
