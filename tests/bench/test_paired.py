import time

import pytest

from rgenima_lib.bench.paired import paired_timings, summarise


def test_paired_timings_interleaves_and_reports_ratio():
    order = []
    result = paired_timings({"slow": lambda: (order.append("slow"), time.sleep(0.02)),
                             "fast": lambda: (order.append("fast"), time.sleep(0.005))},
                            repeats=3, ratios={"slow_over_fast": ("slow", "fast")})
    # one warm-up each, then strict alternation
    assert order == ["slow", "fast"] * 4
    assert result["slow"]["repeats"] == 3
    assert result["slow"]["min_s"] <= result["slow"]["median_s"] <= result["slow"]["max_s"]
    assert result["ratios"]["slow_over_fast"]["median"] > 1.5


def test_paired_timings_refuses_too_few_repeats():
    with pytest.raises(ValueError, match="at least 3"):
        paired_timings({"a": lambda: None}, repeats=2)


def test_summarise_spread():
    assert summarise([1.0, 2.0, 3.0])["spread"] == pytest.approx(1.0)
