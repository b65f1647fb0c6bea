"""Side-by-side timings are warm: the first call is reported apart, the rest give the median."""

import pytest

from services.detection.timing import speed_ratio, warm_timing


def test_the_cold_call_is_excluded_and_the_median_is_of_the_warm_runs():
    times = iter([40.0, 50.0, 45.0])
    tensorflow = warm_timing(998.0, lambda: next(times))
    assert tensorflow.cold_ms == 998.0 and tensorflow.runs_ms == (40.0, 50.0, 45.0)
    assert tensorflow.median_ms == 45.0
    assert tensorflow.text == "median 45 ms (40-50 ms, 3 warm runs)"
    opencv = warm_timing(80.0, lambda: 90.0, runs=2)
    assert speed_ratio(opencv, tensorflow) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        warm_timing(1.0, lambda: 1.0, runs=0)
