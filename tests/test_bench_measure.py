"""The benchmark scripts' repeat loop (benchmarks/common.py: measure): how many steps it times and
when it stops. No speed is asserted; the step is a fixed sleep."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from common import measure  # noqa: E402


def _sleep_step():
    time.sleep(0.002)


def test_measure_times_the_repeats():
    t = measure(_sleep_step, repeats=5, warmup=2)
    assert t.runs == 5 and len(t.warmup_ms) == 2 and not t.note
    assert t.min_ms >= 1.9


def test_measure_repeats_past_the_count_until_the_minimum_time():
    t = measure(_sleep_step, repeats=3, warmup=1, min_time_s=0.1)
    assert t.runs > 3  # about 50 steps of 2 ms
    assert sum(t.times_ms) >= 0.1e3 * 0.9
    assert not t.note  # more than asked for: nothing was cut short


def test_measure_budget_bounds_the_minimum_time():
    t = measure(_sleep_step, repeats=1000, warmup=1, min_time_s=10.0, budget_s=0.05)
    assert 1 <= t.runs < 1000
    assert sum(t.times_ms) < 1e3  # stopped at the budget, not at min_time_s
    assert "time budget" in t.note
