"""Confidence as the mean of a Beta-Bernoulli posterior.

A memory's usefulness is an unknown probability p that it helps when applied. We keep
Beta(alpha, beta) over p and report its mean alpha / (alpha + beta).

- The prior depends on how the memory was made: stored explicitly by an agent
  Beta(2, 1) (0.67); distilled automatically from a session Beta(1.5, 1) (0.60).
- ``memory_feedback``: helpful adds 1 to alpha, unhelpful adds 1 to beta (direct evidence).
- ``memory_outcome``: a task that used the memory succeeded adds 0.5 to alpha, failed
  adds 0.5 to beta (indirect evidence: the task may have failed for other reasons).
- Search hides memories whose confidence is below ``HIDE_BELOW`` (0.3): an explicitly
  stored memory leaves search after 4 unhelpful ratings with no helpful one
  (2 / (3 + 4) = 0.29); a helpful rating only ever raises confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

HIDE_BELOW = 0.3
FEEDBACK_WEIGHT = 1.0
OUTCOME_WEIGHT = 0.5


class Origin(StrEnum):
    stored = "stored"
    distilled = "distilled"


PRIORS: dict[Origin, tuple[float, float]] = {
    Origin.stored: (2.0, 1.0),
    Origin.distilled: (1.5, 1.0),
}


@dataclass(frozen=True)
class Belief:
    alpha: float
    beta: float

    @classmethod
    def prior(cls, origin: Origin) -> Belief:
        alpha, beta = PRIORS[origin]
        return cls(alpha, beta)

    @property
    def confidence(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def observe(self, positive: bool, weight: float) -> Belief:
        if positive:
            return Belief(self.alpha + weight, self.beta)
        return Belief(self.alpha, self.beta + weight)


def rank_score(relevance: float, confidence: float) -> float:
    """Relevance first, confidence as a tie-breaker that can reorder close matches.

    With cosine relevance in [0, 1], a fully confident memory keeps its relevance and
    one at the hiding floor keeps 79 % of it: confidence reorders near-equals, it
    never lifts an off-topic memory over a relevant one.
    """
    return relevance * (0.7 + 0.3 * confidence)
