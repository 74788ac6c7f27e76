"""Outcomes back into the decider: grade the model that decided, then teach it.

Every outcome reaches every shard; the one that remembers its decision (in the
:class:`~operators.feedback.FeedbackLoop`) grades it: correct or not (progressive
validation: the model predicted before it learns the label), its squared error for
the quality metrics, the variant's grade for a rollout, and the prediction-error
stream for drift. Then the model learns from the labels (when ``learning`` is on).
An outcome for a decision that has already expired is counted late.
"""

from __future__ import annotations

from collections.abc import Sequence

from mypy_extensions import mypyc_attr

from operators.drift import DriftMonitor
from operators.events import OutcomeEvent
from operators.feedback import FeedbackLoop
from operators.modeboard import ModeBoard
from operators.modelpath import ModelPath
from operators.quality import QualityTracker

__all__ = ["OutcomeGrader"]


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class OutcomeGrader:
    """Grades and teaches the model with the outcomes of this shard's decisions.

    >>> from operators.feedback import Pending
    >>> from operators.variants import Variant
    >>> model = ModelPath([Variant("control", 1.0)])
    >>> feedback = FeedbackLoop()
    >>> feedback.remember("d1", Pending("control", "v1", {"battery": 5.0}, 0.9, 0))
    >>> grader = OutcomeGrader(feedback, model, QualityTracker("demo", "s0"), DriftMonitor())
    >>> grader.grade([OutcomeEvent("d1", "docked", 1.0, 10)], 100, ModeBoard())
    >>> model.last_label_at, feedback.pending
    (100, 0)
    """

    def __init__(self, feedback: FeedbackLoop, model: ModelPath, quality: QualityTracker,
                 drift: DriftMonitor) -> None:
        self.feedback = feedback
        self.model = model
        self.quality = quality
        self.drift = drift

    def grade(self, outcomes: Sequence[OutcomeEvent], now: int, board: ModeBoard) -> None:
        learn: dict[str, tuple[list, list[bool]]] = {}
        grades: dict[str, list[int]] = {}
        errors = []
        feedback, quality = self.feedback, self.quality
        for outcome in outcomes:
            pending = feedback.resolve(outcome.decision_id)
            if pending is None:
                if feedback.is_late(outcome.decision_id):
                    quality.add_late_outcome(now)
                continue
            label = outcome.label >= 0.5
            correct = (pending.score > 0.5) == label  # an undecided 0.5 is no positive call
            errors.append(not correct)
            grade = grades.setdefault(pending.variant, [0, 0])
            grade[0] += correct
            grade[1] += 1
            quality.add_outcome(pending.version, pending.variant, correct,
                                (pending.score - label) ** 2, now)
            rows, labels = learn.setdefault(pending.variant, ([], []))
            rows.append(pending.values)
            labels.append(label)
        for variant, (correct_count, total) in grades.items():
            board.grade(variant, correct_count, total)
        if errors:
            self.model.last_label_at = now
            self.drift.observe_errors(errors, now, now)
        if board.flags.enabled("learning"):
            for variant, (rows, labels) in learn.items():
                self.model.learn(variant, rows, labels)
