"""The book's verdict protocol: how a claim's verdict is decided, in one place.

A verdict is one of :data:`OUTCOMES`. It is decided by a :class:`Rule`: a function of the
stored results plus the parameters fixed with it before the full run (margins, gates, the
least number of seeds). The rule's :meth:`Rule.fingerprint` (a hash of its source and its
parameters) is stored with the results it judges, so a rule changed after the data were
seen no longer matches them, and the experiment has to be run again.

The statistics are the ones a reviewer expects of a few seeds:

- paired differences over seeds (the same seed trains both models on the same batches),
  summarised by a 95% Student-t interval (:func:`t_interval`);
- "better" or "worse" only when the interval excludes zero; "no difference" only when the
  whole interval lies inside an equivalence margin declared in the rule
  (:func:`compare`); anything else is *unclear*;
- a gate (:func:`learned`): a comparison counts only between models that beat a stated
  baseline (chance, or a model that only knows the answer format); otherwise the verdict
  is *inconclusive*, not evidence.

Explained in "How to read this book" (verdicts).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

#: What a verdict can say. "inconclusive": the experiment ran but could not tell.
OUTCOMES = ("supported", "refuted", "nuanced", "inconclusive", "untested")
#: The confidence of every interval in the book.
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` seeds with its ``level`` Student-t interval ``[low, high]``.

    Defined in "How to read this book".
    """

    mean: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    def __str__(self) -> str:
        return f"{self.mean:+.3g} [{self.low:+.3g}, {self.high:+.3g}]"


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of ``values`` (one per seed) with its Student-t confidence interval.

    Needs at least two finite values. Defined in "How to read this book".
    """
    from scipy import stats

    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"values must be numbers, one per seed, got {values!r}")
    values = list(values)
    if any(isinstance(v, (bool, str, bytes)) or not isinstance(v, numbers.Real) for v in values):
        raise TypeError(f"values must be real numbers, one per seed, got {values!r}")
    values = [float(v) for v in values]
    if len(values) < 2:
        raise ValueError(f"an interval needs at least 2 values (seeds), got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"values must be finite, got {values}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df=n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


def paired_differences(first: dict, second: dict) -> list[float]:
    """``first[seed] - second[seed]`` for every seed, refusing unpaired seeds.

    ``first`` and ``second`` map a seed to one number. Defined in "How to read this book".
    """
    if not isinstance(first, dict) or not isinstance(second, dict):
        raise TypeError(f"first and second must map a seed to a number, got {type(first).__name__} and "
                        f"{type(second).__name__}")
    if set(first) != set(second):
        raise ValueError(f"unpaired seeds: {sorted(set(first) ^ set(second), key=str)}")
    out = [float(first[s]) - float(second[s]) for s in sorted(first, key=str)]
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"paired differences must be finite, got {out} from {first} and {second}")
    return out


#: A reading that is not ``"unclear"`` (:func:`compare`), in the words the verdicts' rests-on lines use.
READ_CLEARLY = "clear of zero or inside the margin"


def compare(interval: Interval, margin: float) -> str:
    """Read an interval of differences (first minus second) against an equivalence margin:

    - ``"equivalent"``: the whole interval lies inside ``(-margin, margin)``;
    - ``"higher"`` / ``"lower"``: the interval excludes zero (first higher / lower);
    - ``"unclear"``: neither (too few seeds or too much spread to tell).

    Defined in "How to read this book".
    """
    if not isinstance(interval, Interval):
        raise TypeError(f"interval must be an Interval (from t_interval), got {interval!r}")
    if isinstance(margin, bool) or not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    if -margin < interval.low and interval.high < margin:
        return "equivalent"
    if interval.low > 0:
        return "higher"
    if interval.high < 0:
        return "lower"
    return "unclear"


def learned(score: float, baseline: float, *, lower_is_better: bool, by: float) -> bool:
    """The gate: did a model beat ``baseline`` (chance, or a model that only knows the
    answer format) by more than ``by``? Defined in "How to read this book"."""
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
               for x in (score, baseline, by)):
        raise ValueError(f"score, baseline and by must be finite numbers, got {score!r}, {baseline!r}, {by!r}")
    return (baseline - score > by) if lower_is_better else (score - baseline > by)


@dataclass(frozen=True)
class Verdict:
    """A rule's answer: the outcome, one line saying why, and the numbers behind it.

    Defined in "How to read this book".
    """

    outcome: str
    reason: str
    numbers: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {OUTCOMES}")
        if not self.reason.strip() or "\n" in self.reason:
            raise ValueError(f"a verdict needs a one-line reason, got {self.reason!r}")


def first_non_finite(value, where: str = "results") -> str | None:
    """Where the first NaN or infinite number in ``value`` (nested dicts and lists) is,
    e.g. ``"results['decoder'][2]['loss']"``, or ``None`` when every number is finite.
    Defined in "How to read this book"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return None if math.isfinite(value) else where
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = first_non_finite(item, f"{where}[{key!r}]")
        if found:
            return found
    return None


@dataclass(frozen=True)
class Rule:
    """How one claim is decided: ``decide(results, parameters) -> Verdict``, with the
    ``parameters`` (margins, gates, ``min_seeds``) fixed before the full run.

    Calling the rule checks that the results hold at least ``min_seeds`` seeds (else the
    verdict is *inconclusive*) and returns ``decide``'s verdict. Defined in "How to read
    this book".
    """

    claim: str
    statement: str
    parameters: dict
    decide: Callable[[dict, dict], Verdict]
    seeds: Callable[[dict], int] | None = None

    def __post_init__(self):
        if not (isinstance(self.claim, str) and len(self.claim) == 3 and self.claim.startswith("C")):
            raise ValueError(f"claim must be an id like 'C01', got {self.claim!r}")
        if not isinstance(self.statement, str) or not self.statement.strip():
            raise ValueError(f"statement must be the claim in words, got {self.statement!r}")
        if not isinstance(self.parameters, dict):
            raise TypeError(f"parameters must be a dict, got {type(self.parameters).__name__}")
        if not callable(self.decide) or (self.seeds is not None and not callable(self.seeds)):
            raise TypeError(f"decide (and seeds, when given) must be functions, got {self.decide!r}, {self.seeds!r}")
        json.dumps(self.parameters, allow_nan=False)  # parameters must be plain data: they are hashed and shown

    def fingerprint(self) -> str:
        """A hash of everything the decision depends on: the call tree inside the package of
        ``decide``, ``seeds`` and the protocol's own checks (:meth:`__call__`), the
        parameters and the statement (:func:`whydecoder.fingerprint.fingerprint`); the
        machinery that stores results (:data:`whydecoder.fingerprint.STORAGE`) is walked
        through, not recorded."""
        from .fingerprint import STORAGE, fingerprint

        roots = [self.decide, type(self).__call__] + ([self.seeds] if self.seeds else [])
        # the machinery that stores results decides nothing: a rule that reaches it (through a helper that
        # can save a checkpoint, say) does not change with it
        return fingerprint(*roots, extra={"parameters": self.parameters, "statement": self.statement},
                           transparent=STORAGE)

    def readings(self, results: dict) -> dict:
        """``decide``'s numbers on ``results`` whatever the number of seeds (the gate on
        ``min_seeds`` left out): what a page and an evidence sentence describe even where
        the verdict is inconclusive for too few seeds."""
        return self.decide(results, self.parameters).numbers

    def __call__(self, results: dict) -> Verdict:
        if not isinstance(results, dict):
            raise TypeError(f"rule {self.claim} decides on a dict of stored results, got {type(results).__name__}")
        bad = first_non_finite(results)
        if bad:
            return Verdict("inconclusive", f"the results hold a value that is not a finite number at {bad}")
        need = self.parameters.get("min_seeds")
        if need is not None and self.seeds is not None:
            have = self.seeds(results)
            if have < need:
                return Verdict("inconclusive", f"{have} seeds, fewer than the {need} the rule asks for")
        verdict = self.decide(results, self.parameters)
        if not isinstance(verdict, Verdict):
            raise TypeError(f"rule {self.claim} returned {type(verdict).__name__}, not a Verdict")
        return verdict


def fingerprints(rules: dict[str, Rule]) -> dict[str, str]:
    """``{claim: fingerprint}`` of an experiment's rules, as stored with its settings.

    Defined in "How to read this book"."""
    return {claim: rule.fingerprint() for claim, rule in sorted(rules.items())}
