"""The verdict protocol: intervals, comparisons against a margin, the gate, and rules
whose fingerprint changes with their source or their parameters."""

import math

import pytest

from whydecoder.verdicts import (
    OUTCOMES,
    Interval,
    Rule,
    Verdict,
    compare,
    fingerprints,
    learned,
    paired_differences,
    t_interval,
)


def test_t_interval_matches_the_textbook():
    iv = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.3027
    assert iv.mean == 2 and iv.n == 3
    assert math.isclose(iv.high - 2, 4.302652729911275 / math.sqrt(3), rel_tol=1e-9)
    five = t_interval([0.1, 0.2, 0.3, 0.4, 0.5])  # t(0.975, 4) = 2.7764
    assert math.isclose(five.high - 0.3, 2.7764451051977987 * math.sqrt(0.025) / math.sqrt(5), rel_tol=1e-9)


@pytest.mark.parametrize("values", [[1.0], [], [1.0, math.nan], [1.0, math.inf]])
def test_t_interval_refuses_what_it_cannot_summarise(values):
    with pytest.raises(ValueError):
        t_interval(values)


@pytest.mark.parametrize("low, high, margin, expected", [
    (-0.5, 0.5, 1.0, "equivalent"),   # inside the margin
    (0.2, 0.4, 1.0, "equivalent"),    # a real but negligible difference
    (0.2, 1.4, 1.0, "higher"),
    (-1.4, -0.2, 1.0, "lower"),
    (-0.5, 1.5, 1.0, "unclear"),      # absence of evidence is not evidence of absence
    (-0.5, 0.5, 0.0, "unclear"),
])
def test_compare_reaches_every_reading(low, high, margin, expected):
    assert compare(Interval((low + high) / 2, low, high, 5), margin) == expected


def test_compare_refuses_a_bad_margin():
    with pytest.raises(ValueError, match="margin"):
        compare(Interval(0, -1, 1, 5), -0.1)


def test_the_gate():
    assert learned(1.2, math.log(256), lower_is_better=True, by=0.5)
    assert not learned(5.4, math.log(256), lower_is_better=True, by=0.5)
    assert learned(0.40, 0.25, lower_is_better=False, by=0.05)
    assert not learned(0.27, 0.25, lower_is_better=False, by=0.05)
    with pytest.raises(ValueError):
        learned(math.nan, 1.0, lower_is_better=True, by=0.0)


def test_paired_differences_refuse_unpaired_seeds():
    assert paired_differences({0: 3.0, 1: 5.0}, {0: 1.0, 1: 1.0}) == [2.0, 4.0]
    with pytest.raises(ValueError, match="unpaired seeds"):
        paired_differences({0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0})


def _decide(results, p):
    return Verdict("supported" if results["x"] > p["threshold"] else "refuted", "x against the threshold")


def _rule(**parameters):
    return Rule("C99", "x exceeds a threshold", {"threshold": 1.0, "min_seeds": 5, **parameters}, _decide,
                seeds=lambda r: len(r["seeds"]))


def test_a_rule_decides_and_asks_for_enough_seeds():
    assert _rule()({"x": 2.0, "seeds": range(5)}).outcome == "supported"
    assert _rule()({"x": 0.5, "seeds": range(5)}).outcome == "refuted"
    short = _rule()({"x": 2.0, "seeds": range(3)})
    assert short.outcome == "inconclusive" and "3 seeds" in short.reason


def test_the_fingerprint_follows_the_parameters_and_the_source():
    assert _rule().fingerprint() == _rule().fingerprint()
    assert _rule().fingerprint() != _rule(threshold=1.1).fingerprint()

    def _other(results, p):
        return Verdict("supported" if results["x"] >= p["threshold"] else "refuted", "x against the threshold")

    changed = Rule("C99", "x exceeds a threshold", _rule().parameters, _other, seeds=_rule().seeds)
    assert changed.fingerprint() != _rule().fingerprint()
    assert fingerprints({"C99": _rule()}) == {"C99": _rule().fingerprint()}


def test_verdicts_and_rules_validate_what_they_hold():
    assert set(OUTCOMES) == {"supported", "refuted", "nuanced", "inconclusive", "untested"}
    with pytest.raises(ValueError, match="outcome"):
        Verdict("maybe", "x")
    with pytest.raises(ValueError, match="one-line reason"):
        Verdict("supported", "two\nlines")
    with pytest.raises(ValueError, match="claim must be"):
        Rule("X1", "s", {}, _decide)
    with pytest.raises(TypeError):
        Rule("C99", "s", {"f": object()}, _decide)
