"""The decision path against its recorded outcome (``tests/golden.py``): 200,000 fleet
events with a partition, a step and bad lines, replayed through the CLI, give the same
decision IDs, actions, paths, fresh flags and modes, the same alarms, mode changes and
dead letters as the path the golden file was recorded with (the decider before it was
made of parts). A change of decisions is re-recorded only when intended, and the
commit that re-records names the difference.

Once allowed and since gone: a slow window that a batch's event closed was committed
after the batch's fast decisions (the parts ran one after the other), where the first
recorded path committed it between two fast decisions, so a slow decision could be
rejected because a later fast decision of the same batch had changed its source's
action first. The slow part now applies the fast decisions to the sources' state itself,
event by event, and commits such a window in between, as the first path did; the slow
decisions are compared exactly again (see the last paragraph).

Re-recorded once since, intended: a model canary counts as failing at its second
consecutive failed slot (a young model may rank one reading wrongly once). The young
model's single failed slot early in this replay no longer raises ``canary_failed`` nor
degrades the mode then; the mode's one degradation starts 14 s later, and the decisions
in between are made in NORMAL.

And once more, intended: the model's scores are watched as their mean per second of
pipeline clock (not each score), so the 8 ``confidence`` and 5 ``score`` alarms of this
replay, raised while the model learned, are gone; every decision, mode change and other
alarm is as before.

And once more, intended, for two changes. The model takes one SGD step per row it
learns (it took one per chunk of 250, so it had barely learned in 80 s): it now scores
678 fresh NORMAL decisions at 0.9 or more, which are ``inspect`` instead of
``continue`` (one slow window confirms that ``inspect``), and its canary ranks the flat
battery higher in all 6 judged slots (it ranked it lower in 1). The step test finds
robot-007's 15-degree step 0.5 s after it begins: one ``peer:motor_temp_c`` alarm more.
Mode changes, dead letters, every other alarm and every other decision are as before.

And once more, intended: the step test looks for jumps in the readings (the fleet's
common level is no longer in them) and a source's level change against its peers waits
5 s for its fleet. One ``peer:speed`` alarm (robot-011 at 50.8 s, the replay's one
marginal CUSUM crossing: 50.3 against a threshold of 48.0) is no longer raised; every
decision, mode change and other alarm is as before.

And once more, intended: each value is watched against what the source's other values
predict (``relation:``). robot-007's 15-degree step is also its
``relation:motor_temp_c`` alarm (50.7 s, onset 50.06 s), 0.2 s after its
``peer:motor_temp_c``; every decision, mode change and other alarm is as before.

And once more, intended: slow windows that the pipeline clock passes during a batch are
committed at the batch's end, after its fast decisions, as the one difference above
already did for windows a batch's event closes (the health check in the middle of a
batch no longer commits them before fast decisions that came earlier on the same
clock). 13 more of the 483 slow decisions (23, from 10) are rejected: each was decided
against a state the fast path had changed since the window's last event, and the
fast path's action is kept. Every fast decision, alarm and mode change is as before.

And once more, intended: a source's spread is judged on its own readings, not on what
is left after its fleet's common level is taken out (that median of peers has noise of
its own, which changes as peers come and go). robot-033's ``variance:motor_temp_c``
(onset 44.7 s, as its partitioned events arrived at once, judged against a common level
of another moment) is gone; robot-045's ``variance:speed`` is new (onset 63.3 s: its
battery fell under 15 % at about 61 s, the simulator holds its target speed, and the
spread of its speed's changes fell by about a quarter). Every decision, mode change and
other alarm is as before.

And once more, intended: a value's long-run scale takes a slow wander under fast noise
for what it is when the value's lag-2 autocovariance says so
(``operators.longrun.persistence``). A peer residual (a reading less its fleet's common
level, which moves once a round) is such a value, so a young one is judged wider: the
speed drops of robot-010 and robot-033 (onsets 11.8 and 15.7 s, in their first 800
samples) are not found in this 80 s replay, the other four 0.6 to 1.3 s later; and with
the level test blind more often, the step test runs sooner and takes the first close
obstacle of robot-030 (20.2 s) and of robot-046 (36.8 s), and robot-030's at 78.5 s, for
steps: 3 ``peer:obstacle_m`` alarms. Every decision and mode change is as before.

And once more, intended: the fleet's common level has no spread test (a median takes
the noise of whichever source is in the middle). The fleet's ``variance:speed`` at
45.0 s (spread -31 %, as the partitioned third of the units came back at once) is gone;
every decision, mode change and other alarm is as before.

And once more, intended: the step test also runs where the level CUSUM is so near blind
that a step takes it longer to find than a block waits to be learned (a coarse sensor's
wander), and a step is measured from the median of the 8 readings before it. robot-046's
second close obstacle (67.7 s) is a ``peer:obstacle_m`` alarm as its first (36.8 s)
was; every decision, mode change and other alarm is as before.

And once more, intended: a level set by a change is refined by the samples after it as
their mean (it was learned at the stream's whole memory, so it stayed where the change
had put it for thousands of samples). robot-046's peer residual of ``obstacle_m`` after
its first close obstacle now follows its return to about 9.6 m (it stayed near 5 m, and
the spread learned about that wrong level was 4.2 where it is 2.1), so its level test is
no longer blind there and the step test does not run: its second close obstacle (67.7 s)
and robot-030's (78.5 s) are no longer ``peer:obstacle_m`` alarms. Every decision, mode
change and other alarm is as before.

And once more, intended: distillation teaches the model every fresh decision until it
has learned 1,000, then one in 32, counted across batches, in whole chunks of 32 rows (it
took a share of each batch: 32 rows of a shard's batch of about 1,250, so 1 in 39 here,
but every row of a batch of 25, as a live stream hands it). The model is warm sooner and
learns other rows: its scores move by 0.057 at the median, and 340 fast decisions of the
200,027 outside the slow path are on the other side of its 0.9 threshold (279
``continue`` are now ``inspect``, 61 the other way); three slow decisions keep the
newer fast action they were rejected against (``inspect``, one of those). Every alarm,
mode change, dead letter and canary decision is as before.

And once more, intended: a window an event closes is committed between that event's
fast decision and the next (the slow part applies the fast decisions to the sources'
state, event by event), so a slow decision is no longer rejected because a later fast
decision of its batch changed its source's action first. Of the 483 slow decisions (the
same windows, fresh flags and modes), 3 are rejected where 24 were, and 24 changed in
all. Every fast decision, alarm, mode change, dead letter and canary decision is as
before.

And once more, intended: the slow path's risk is the largest distance of a value's window
median from both the source's history and the window before, against a threshold from a
budget of 100 false revisions per million windows (4.31 for this fleet's eight values),
in scales widened while few windows are known; it was the RMS of z-scores of window
means against a fixed 3.0. Of the 483 slow decisions (the same windows, fresh flags,
modes and rejections), 4 are ``inspect`` where 63 were: 59 revisions are now
confirmations (43 ``continue``, 12 ``return_to_base``, 4 ``slow_down``). Every fast
decision, alarm, mode change, dead letter and canary decision is as before.
"""

from __future__ import annotations

import json

from tests.golden import GOLDEN, replay


def test_the_golden_replay_decides_as_recorded(tmp_path):
    expected = json.loads(GOLDEN.read_text())
    found = replay(tmp_path)
    differences = [f"{what}: recorded {expected[what]}\n  now {found.get(what)}"
                   for what in expected if found.get(what) != expected[what]]
    assert not differences, "\n".join(differences)
