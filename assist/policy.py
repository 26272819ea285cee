"""Auto-answer policy: the confidence threshold that meets a tenant's precision target, and the evidence it rests on.

A tenant does not pick a raw threshold; it picks how often an automatic answer may be wrong (a precision
target, 0.98 by default). The threshold is the lowest verifier probability at which the answers above it
were right often enough that a one-sided Clopper–Pearson bound (95% confidence) on their precision still
reaches the target. The evidence is

- a self-test made from the tenant's own knowledge (every FAQ row's, quick reply's and past chat's
  question asked the way customers type it must be answered by that source; the same question with its
  distinguishing word swapped, and questions from outside any shop's domain, must not be answered), and
- agents' feedback on suggestions (accepted or edited: right; rejected: wrong).

With too little evidence to reach the target at any threshold, the tenant stays in suggest-only mode and
the policy says why. Feedback counts more as it accumulates: it is what the tenant's real customers asked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PRECISION_TARGET = 0.98
CONFIDENCE_LEVEL = 0.95
# Below this probability nothing is worth showing an agent either (off-domain questions land here).
MIN_SUGGEST_PROBABILITY = 0.15

PolicyMode = Literal["auto", "suggest_only"]
# The note of the suggest-only policy served while a tenant's changed knowledge is calibrated again.
CALIBRATING_NOTE = (
    "Bilgi tabanı değişti; otomatik yanıt politikası yeniden hesaplanıyor. Bu sırada otomatik yanıt "
    "kapalı, yalnızca öneri gösterilir."
)


@dataclass(frozen=True)
class EvidenceSample:
    """One verified decision: the verifier's probability and whether answering would have been right."""

    probability: float
    right: bool
    origin: Literal["self_test", "feedback"]


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz), for x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return result


def beta_cdf(x: float, a: float, b: float) -> float:
    """Return the regularised incomplete beta function I_x(a, b): the CDF of Beta(a, b) at `x`."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def precision_reaches(right: int, total: int, target: float, level: float = CONFIDENCE_LEVEL) -> bool:
    """Return precision_lower_bound(right, total, level) >= target, with one CDF evaluation."""
    if total == 0 or right == 0:
        return target <= 0.0
    return beta_cdf(target, right, total - right + 1) <= 1.0 - level


def precision_lower_bound(right: int, total: int, level: float = CONFIDENCE_LEVEL) -> float:
    """Return the one-sided Clopper–Pearson lower bound of a precision of `right` out of `total`: the
    (1 - level) quantile of Beta(right, total - right + 1). Pure Python: a server does not load scipy.stats
    (about 70 MB in each process) for one quantile."""
    if total == 0 or right == 0:
        return 0.0
    alpha = 1.0 - level
    if right == total:
        return float(alpha ** (1.0 / total))  # Beta(n, 1): the CDF is x**n
    a, b = right, total - right + 1
    low, high = 0.0, 1.0
    while high - low > 1e-12:
        mid = (low + high) / 2.0
        if beta_cdf(mid, a, b) < alpha:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def samples_needed(target: float, level: float = CONFIDENCE_LEVEL) -> int:
    """Return how many right answers in a row it takes for the bound to reach `target` (no wrong one)."""
    n = 1
    while precision_lower_bound(n, n, level) < target:
        n += 1
    return n


class AutoAnswerPolicy(BaseModel):
    """The tenant's precision target, the threshold that meets it (None: suggest-only) and the evidence."""

    model_config = ConfigDict(frozen=True)

    precision_target: float
    confidence_level: float
    # Automatic answers need a verifier probability at least this; None: suggest-only mode.
    threshold: float | None
    mode: PolicyMode
    # Among the evidence at or above the threshold: how many, how many right, the bound on precision.
    answered: int
    right: int
    precision_lower_bound: float
    # Samples by origin ("self_test", "feedback") and how many of all samples were wrong answers.
    evidence: dict[str, int] = Field(default_factory=dict)
    # A Turkish sentence for the tenant admin: what the threshold rests on, or why auto-answer is off.
    note: str = ""
    computed_at: str = ""


def suggest_only(
    target: float, note: str, level: float = CONFIDENCE_LEVEL, evidence: dict[str, int] | None = None
) -> AutoAnswerPolicy:
    """Return a suggest-only policy that says why (`note`, a Turkish sentence for the tenant admin)."""
    return AutoAnswerPolicy(
        precision_target=target,
        confidence_level=level,
        threshold=None,
        mode="suggest_only",
        answered=0,
        right=0,
        precision_lower_bound=0.0,
        evidence=evidence or {},
        note=note,
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def choose_policy(
    samples: Sequence[EvidenceSample],
    target: float = DEFAULT_PRECISION_TARGET,
    level: float = CONFIDENCE_LEVEL,
    manual_threshold: float | None = None,
) -> AutoAnswerPolicy:
    """Return the policy: the lowest threshold whose answered evidence has a precision bound >= `target`.

    `manual_threshold` (a tenant's explicit choice) is used as it is; the policy then reports what the
    evidence says of the precision at that threshold, so the risk is visible.
    """
    ordered = sorted(samples, key=lambda s: -s.probability)
    evidence = {
        "self_test": sum(1 for s in samples if s.origin == "self_test"),
        "feedback": sum(1 for s in samples if s.origin == "feedback"),
        "wrong": sum(1 for s in samples if not s.right),
    }
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if manual_threshold is not None:
        above = [s for s in ordered if s.probability >= manual_threshold]
        right_above = sum(s.right for s in above)
        bound = precision_lower_bound(right_above, len(above), level)
        note = (
            f"Eşik firma tarafından {manual_threshold:.2f} olarak belirlendi; bu eşikte {len(above)} örneğin "
            f"{right_above} tanesi doğru, doğruluk alt sınırı %{bound * 100:.1f} (%{level * 100:g} güvenle)."
        )
        return AutoAnswerPolicy(
            precision_target=target,
            confidence_level=level,
            threshold=manual_threshold,
            mode="auto",
            answered=len(above),
            right=right_above,
            precision_lower_bound=round(bound, 4),
            evidence=evidence,
            note=note,
            computed_at=now,
        )
    best: tuple[float, int, int] | None = None
    right = 0
    for i, sample in enumerate(ordered):
        right += sample.right
        if i + 1 < len(ordered) and ordered[i + 1].probability == sample.probability:
            continue  # a threshold answers every sample of equal probability or none of them
        if precision_reaches(right, i + 1, target, level):
            best = (sample.probability, i + 1, right)
    if best is None:
        needed = samples_needed(target, level)
        note = (
            f"Yeterli kanıt yok: %{target * 100:g} doğruluk hedefi için en az {needed} doğrulanmış örnek "
            f"(hatasız) gerekir; {len(ordered)} örnek var. Otomatik yanıt kapalı, yalnızca öneri gösterilir."
        )
        return suggest_only(target, note, level, evidence)
    threshold, answered, right_above = best
    bound = precision_lower_bound(right_above, answered, level)
    note = (
        f"Güven ≥ {threshold:.2f} olan {answered} örneğin {right_above} tanesi doğru; doğruluk alt sınırı "
        f"%{bound * 100:.1f} (%{level * 100:g} güvenle), hedef %{target * 100:g}."
    )
    return AutoAnswerPolicy(
        precision_target=target,
        confidence_level=level,
        threshold=round(threshold, 4),
        mode="auto",
        answered=answered,
        right=right_above,
        precision_lower_bound=round(bound, 4),
        evidence=evidence,
        note=note,
        computed_at=now,
    )
