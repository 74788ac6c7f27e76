"""The model path: variants, their scores for a batch, and what the models learn.

:class:`ModelPath` routes each source to a model variant (following a rollout
when one runs), scores the batch's events per variant in one call each (only in
``NORMAL``, and only for sources whose ``model`` capability is on), and keeps the
model path's health: a model that raises or returns a non-finite score fails the
path, which the mode machine hears of as a lost heartbeat. In ``PAUSED`` it
probes the lost model with one row per batch, so the path notices its return.

Three things the path keeps for those who judge its models, and for its decisions:

* how far each variant's scores moved because it learned (``learned``): every
  learning step is measured on the latest events it did not learn, scored before and
  after, and the shifts add up. Drift watches the scores with that part taken out, so
  a model that learns in steps (a replay's batches) is not an alarm, and a model whose
  input moved, or that broke, still is;
* which of the names canaries ask about the stream's own events have carried
  (``carries``): a model that never saw a value from the stream cannot be judged on it;
* which variants the stream's own rows have shown an intervention (``taught``): until
  then a variant knows one only from the rules' probes, and its score does not decide.

:class:`Distillation` teaches the models the rules while no outcome labels arrive (or
while the mode keeps the model from deciding, so its labels cannot grade it):
every fresh decision until the model has learned ``WATCH_AFTER_ROWS``, then one in
``learn_every`` (counted across batches, so the batching does not change what it
learns), labelled with whether a rule fired, plus each rule's own probes, learned in
chunks of ``learn_per_batch`` rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Sequence
from itertools import compress
from typing import Any

import numpy as np

from operators.batch import BatchResult, DecideBatch
from operators.modeboard import ModeBoard
from operators.modelfault import ModelFault
from operators.modes import NORMAL, PAUSED
from operators.policy import DecisionPolicy
from operators.variants import Variant, VariantRouter

__all__ = ["Distillation", "ModelPath"]

log = logging.getLogger("lucidstream.decider")

# rows a model learns before drift watches its scores: until then they move because it
# learns, not because its input or its health changed
WATCH_AFTER_ROWS = 1_000
# the latest rows a learning step's shift is measured on, at most (scored before and
# after): each measure errs by its sample, and the errors add up, as a wander
SHIFT_ROWS = 256


class ModelPath:
    """Scores a batch with each source's model variant.

    >>> from operators.events import SensorEvent
    >>> from operators.modeboard import ModeBoard
    >>> path = ModelPath([Variant("control", 1.0)])
    >>> events = [SensorEvent("r1", 0, {"battery": 9.0}), SensorEvent("r2", 0, {"battery": 80.0})]
    >>> batch = DecideBatch(events, [0, 0], ["NORMAL", "NORMAL"], ModeBoard())
    >>> path.observe_batch(batch, BatchResult())
    >>> batch.variant, [round(s, 1) for s in batch.score]   # an untrained model: 0.5
    (['control', 'control'], [0.5, 0.5])
    """

    def __init__(self, variants: Sequence[Variant], shard: str = "") -> None:
        self.variants = list(variants)
        self.router = VariantRouter(variants)
        self.scorers = {v.name: v.scorer() for v in variants}
        self.shard = shard
        self.failing_since: int | None = None
        self.last_label_at: int | None = None  # pipeline time of the latest outcome label
        self._routed_share: float | None = None
        self.fault: ModelFault | None = None  # injected on purpose (fault scenarios)
        # per variant, how far learning has moved its mean score (see the module's doc)
        self.learned: dict[str, float] = {}
        self._recent: list = []            # the latest rows scored
        self._sought: set[str] = set()     # names asked about, not carried yet
        self._carried: set[str] = set()
        # variants the stream's own rows have shown a positive (a rule that fired on one
        # of them, or a positive outcome): until then a variant knows an intervention
        # only from the rules' probes, and its score does not decide
        self.taught: set[str] = set()

    def seek(self, names: Collection[str]) -> None:
        """Note which value names :meth:`carries` will be asked about."""
        self._sought |= set(names) - self._carried

    def carries(self, name: str) -> bool:
        """Whether an event of the stream has carried ``name`` (sought with :meth:`seek`)."""
        return name in self._carried

    def failing_ms(self, now: int) -> int:
        """How long the model path has been failing at ``now`` (0: it answers)."""
        return 0 if self.failing_since is None else now - self.failing_since

    def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None:
        board = batch.board
        self._route(board)
        flags, events, modes = board.flags, batch.events, batch.mode
        variants = self.router.route_all([ev.source_id for ev in events])
        scores: list[float | None] = [None] * len(events)
        groups: dict[str, list[int]] = {}
        model_off = flags.any_off("model")
        if variants and not model_off and modes.count(NORMAL) == len(modes) and \
                variants.count(variants[0]) == len(variants):
            groups[variants[0]] = list(range(len(events)))  # the common case, in C
        else:
            for i, ev in enumerate(events):
                if modes[i] == NORMAL and (not model_off or flags.enabled("model",
                                                                          ev.source_id)):
                    groups.setdefault(variants[i], []).append(i)
        for variant, index in groups.items():
            whole = len(index) == len(events)  # the batch's every event, in order
            rows = [ev.values for ev in events] if whole else [events[i].values for i in index]
            predicted = self.score(variant, rows, batch.now[index[0]])
            if predicted is None:
                batch.model_down = True
                continue
            if whole:
                scores[:] = predicted
            else:
                for i, p in zip(index, predicted, strict=True):
                    scores[i] = p
            if getattr(self.scorers[variant], "samples_seen", WATCH_AFTER_ROWS) < \
                    WATCH_AFTER_ROWS:
                batch.model_young = True
        if modes[-1] == PAUSED:  # probe the lost model with one row per batch
            self.score(self.variants[0].name, [events[-1].values], batch.now[-1])
        batch.variant, batch.score = variants, scores
        batch.learned = {variant: self.learned.get(variant, 0.0) for variant in groups}
        batch.untaught = {variant for variant in groups if variant not in self.taught}
        # the latest rows, across batches: those a learning step did not learn are its
        # measure, and with every row learned (a warm-up) the previous batch's are
        self._recent = self._recent[-SHIFT_ROWS:] + [ev.values for ev in events[-SHIFT_ROWS:]]
        if self._sought:
            found = {name for name in self._sought if any(name in ev.values for ev in events)}
            self._sought -= found
            self._carried |= found

    def forget(self, source_id: str) -> None:
        """The source's cached route (variants are routed by a hash of the source)."""
        self.router.forget(source_id)

    def version(self, variant: str) -> str:
        return self.scorers[variant].version

    def in_service(self, board: ModeBoard) -> list[str]:
        """Variants that decide for some sources now (a rolled-back candidate does not)."""
        rollout = board.rollout
        if rollout is None:
            return [v.name for v in self.variants]
        names = [rollout.config.control]
        if rollout.share > 0:
            names.append(rollout.config.candidate)
        return names

    def score(self, variant: str, rows: list, now: int) -> list[float] | None:
        """The model's scores, or ``None`` when the model path fails (its heartbeat is
        lost while it keeps failing)."""
        try:
            predicted = self.scorers[variant].score(rows)
            if self.fault is not None:
                predicted = self.fault.apply(predicted, now)
            if not np.isfinite(predicted).all():
                raise ValueError("the model returned non-finite scores")
        except Exception as exc:  # any failure of a model is the model path's failure
            if self.failing_since is None:
                self.failing_since = now
                log.warning("step=decide shard=%s variant=%s model path failing: %s",
                            self.shard, variant, exc)
            return None
        if self.failing_since is not None:
            log.warning("step=decide shard=%s variant=%s model path answers again after "
                        "%d ms", self.shard, variant, now - self.failing_since)
            self.failing_since = None
        return predicted.tolist()

    def learn(self, variant: str, rows: list, labels: list[bool], own: int | None = None
              ) -> None:
        """Teach ``variant`` the rows (the first ``own`` of them the stream's, all by
        default), and add how far that moved its mean score on the latest events it did
        not learn to :attr:`learned`. (On the rows it learned it moves further: toward
        their labels, which is not where the stream's next scores go.)"""
        scorer = self.scorers[variant]
        learning = {id(row) for row in rows}
        sample = [row for row in self._recent if id(row) not in learning][-SHIFT_ROWS:]
        try:
            rescore = _sample_scorer(scorer, sample)
            before = rescore()
            scorer.learn(rows, labels)
        except Exception as exc:  # a model that cannot learn must not stop the decisions
            log.warning("step=decide shard=%s variant=%s model failed to learn: %s",
                        self.shard, variant, exc)
            return
        if variant not in self.taught and any(labels[:len(rows) if own is None else own]):
            self.taught.add(variant)
        try:
            shift = float(np.mean(rescore()) - np.mean(before)) if sample else 0.0
        except Exception:  # a model that fails to score: the path reports it when it scores
            shift = 0.0
        if math.isfinite(shift):
            self.learned[variant] = self.learned.get(variant, 0.0) + shift

    def _route(self, board: ModeBoard) -> None:
        """Follow the rollout: the candidate's share of the sources, candidate first so
        that a source on the candidate stays on it as the share grows."""
        rollout = board.rollout
        if rollout is None or rollout.share == self._routed_share:
            return
        share, cfg = rollout.share, rollout.config
        self._routed_share = share
        self.router = VariantRouter([Variant(cfg.candidate, share),
                                     Variant(cfg.control, 1.0 - share)])


def _sample_scorer(scorer: Any, sample: list) -> Callable[[], Any]:
    """Scores ``sample`` by ``scorer`` as it is at each call: before and after a learning
    step. The sample's values are read once when the scorer can (``prepared``)."""
    prepared = getattr(scorer, "prepared", None)
    if prepared is None or not sample:
        return lambda: scorer.score(sample)
    matrix = prepared(sample)
    return lambda: scorer.score_prepared(matrix)


class Distillation:
    """Teaches each variant the rules from the batch's fresh decisions, until outcome
    labels arrive (and again once none has arrived for ``label_ttl_ms``)."""

    def __init__(self, model: ModelPath, policy: DecisionPolicy, label_ttl_ms: int,
                 learn_per_batch: int = 32, learn_every: int = 32) -> None:
        if learn_every < 1 or learn_per_batch < 1:
            raise ValueError(f"learn_every={learn_every}, learn_per_batch={learn_per_batch}:"
                             " both count rows, so use 1 or more")
        self.model = model
        self.policy = policy
        self.label_ttl_ms = label_ttl_ms
        self.learn_per_batch = learn_per_batch  # rows a chunk learned at once
        self.learn_every = learn_every          # one fresh decision in this many is learned
        self._fresh_seen = 0                    # fresh decisions offered so far
        self._rows: list = []            # rows waiting to be learned, and their labels
        self._labels: list[bool] = []

    def observe_batch(self, batch: DecideBatch, out: BatchResult) -> None:
        last_label = self.model.last_label_at
        # Labels teach the model only while it decides (they grade its scores); while the
        # mode keeps it off, the rules do, or a model that failed its canary would never
        # learn its way back until the labels had stopped for label_ttl_ms.
        labelled = last_label is not None and batch.now[-1] - last_label <= self.label_ttl_ms
        if not batch.board.flags.enabled("learning") or (labelled and batch.mode[-1] == NORMAL):
            return
        events, fresh, fired = batch.events, batch.fresh, batch.rule_fired
        if len(fresh) != len(events) or len(fired) != len(events):
            raise ValueError(f"a batch of {len(events)} events with {len(fresh)} fresh flags "
                             f"and {len(fired)} rule verdicts: the parts before disagree")
        taken = list(compress(range(len(events)), fresh))  # the fresh ones, found in C
        if not taken:  # the model learns the rules even while it may not decide
            return
        # Every fresh decision until the model is past its warm-up (WATCH_AFTER_ROWS),
        # then a sample: one in every learn_every, which bounds the model's cost per event
        # (a step per row). Both are counted across batches, so a live stream polled every
        # few ms teaches the model the rows its replay teaches it. Rows are gathered into
        # chunks, each learned with the rules' probes. Every variant learns the same rows,
        # whichever variant decided them: a rollout then compares models, not the shares
        # of the fleet they were given.
        seen, every = self._fresh_seen, self.learn_every
        self._fresh_seen += len(taken)
        young = max(0, min(len(taken), WATCH_AFTER_ROWS - seen))  # all of these are learned
        start = young + (WATCH_AFTER_ROWS - seen - young) % every
        taken = taken[:young] + taken[start::every]
        self._rows += [events[i].values for i in taken]
        self._labels += [fired[i] for i in taken]
        size = self.learn_per_batch
        while len(self._rows) >= size:  # whole chunks: the same ones whatever the batching
            self._learn(self._rows[:size], self._labels[:size])
            del self._rows[:size], self._labels[:size]

    def _learn(self, chunk_rows: list, chunk_labels: list[bool]) -> None:
        for variant, scorer in self.model.scorers.items():
            # the rules' own examples, from two rows of the chunk: the model knows each
            # rule over its value's whole range, whatever the stream visited
            spread = getattr(scorer, "spread", lambda name: None)
            taught_rows, taught_labels = list(chunk_rows), list(chunk_labels)
            for row in (chunk_rows[0], chunk_rows[len(chunk_rows) // 2]):
                probe_rows, probe_labels = self.policy.rules.probes(row, spread)
                taught_rows += probe_rows
                taught_labels += probe_labels
            self.model.learn(variant, taught_rows, taught_labels, own=len(chunk_rows))

    def forget(self, source_id: str) -> None:
        """Nothing per source."""
