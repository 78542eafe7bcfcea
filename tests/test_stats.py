import math

import pytest

from whydecoder.stats import mean_and_se


def test_mean_and_se_of_paired_differences():
    mean, se = mean_and_se([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0) and se == pytest.approx(1.0 / 3 ** 0.5)
    mean, se = mean_and_se([0.5])
    assert mean == 0.5 and math.isnan(se)
    with pytest.raises(ValueError, match="non-empty"):
        mean_and_se([])
