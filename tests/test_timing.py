"""The timing helpers: repeats are interleaved, the results have the documented structure, the pass counts
of the trade-off are exact (with fast=True and fast=False, and the flows are built with the requested one),
and the log-log fit recovers a known exponent. No wall-clock assertions: the call order is recorded by fake
callables and the clock is a fake one where durations matter."""

import subprocess
import sys

import numpy as onp
import pytest

from maf_numpy import timing


class FakeClock:
    """A clock that only moves when a fake function says it ran for some seconds."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def recorder(log, name, clock=None, seconds=0.0):
    def function():
        log.append(name)
        if clock is not None:
            clock.now += seconds
    return function


def test_repeats_are_interleaved_a_b_c_a_b_c_after_one_warm_up_call_each():
    log = []
    functions = {name: recorder(log, name) for name in "ABC"}
    timing.time_calls(functions, repeats=3, number=2)
    warm_up, rounds = log[:3], log[3:]
    assert warm_up == ["A", "B", "C"]
    assert rounds == ["A", "A", "B", "B", "C", "C"] * 3, f"repeats not interleaved: {rounds}"


def test_each_function_gets_one_timing_with_median_min_max_per_call():
    clock = FakeClock()
    log = []
    functions = {"fast": recorder(log, "fast", clock, 0.001), "slow": recorder(log, "slow", clock, 0.010)}
    result = timing.time_calls(functions, repeats=4, number=3, clock=clock)
    assert list(result) == ["fast", "slow"]
    for name, seconds in (("fast", 0.001), ("slow", 0.010)):
        t = result[name]
        assert isinstance(t, timing.Timing)
        assert t.number == 3 and t.repeats == 4 and len(t.seconds) == 4
        assert t.min <= t.median <= t.max
        onp.testing.assert_allclose([t.median, t.min, t.max], seconds, rtol=1e-9)


def test_median_min_and_max_are_taken_over_the_repeats():
    clock = FakeClock()
    durations = iter([0.0, 3.0, 1.0, 2.0, 5.0, 4.0])  # warm-up call, then one call per repeat

    def function():
        clock.now += next(durations)

    t = timing.time_calls({"f": function}, repeats=5, number=1, clock=clock)["f"]
    assert t.seconds == (3.0, 1.0, 2.0, 5.0, 4.0)
    assert (t.median, t.min, t.max) == (3.0, 1.0, 5.0)


def test_number_is_chosen_so_that_one_repeat_lasts_at_least_min_repeat_seconds():
    clock = FakeClock()
    log = []
    functions = {"5 ms": recorder(log, "a", clock, 0.005), "50 ms": recorder(log, "b", clock, 0.050)}
    result = timing.time_calls(functions, repeats=2, min_repeat_seconds=0.02, clock=clock)
    assert result["50 ms"].number == 1, "a call longer than the target is timed once per repeat"
    assert result["5 ms"].number >= 4 and result["5 ms"].number * 0.005 >= 0.02
    assert result["5 ms"].number * 0.005 < 0.1, "calibration should not overshoot wildly"


@pytest.mark.parametrize("bad, error", [({}, TypeError), ([lambda: None], TypeError), ({"f": 3}, TypeError)])
def test_time_calls_rejects_functions_that_are_not_a_dict_of_callables(bad, error):
    with pytest.raises(error, match="functions"):
        timing.time_calls(bad)


def test_time_calls_rejects_a_non_positive_repeats():
    with pytest.raises(ValueError, match="repeats"):
        timing.time_calls({"f": lambda: None}, repeats=0)


def test_loglog_slope_recovers_the_exponent_of_a_power_law():
    x = onp.array([2.0, 4, 8, 16, 32, 64, 128, 256])
    for exponent in (-1.0, 0.5, 1.0, 1.7, 2.0):
        assert timing.loglog_slope(x, 3.5 * x**exponent) == pytest.approx(exponent, abs=1e-12)


@pytest.mark.parametrize("x, y", [([1.0], [1.0]), ([1.0, 2.0], [1.0, -2.0]), ([2.0, 2.0], [1.0, 3.0]),
                                  ([1.0, 2.0, 3.0], [1.0, 2.0])])
def test_loglog_slope_rejects_inputs_without_a_positive_power_law_fit(x, y):
    with pytest.raises(ValueError):
        timing.loglog_slope(x, y)


def test_measure_tradeoff_counts_K_and_K_times_D_passes_for_each_model():
    K, dims = 2, (2, 5)
    results = timing.measure_tradeoff(dims=dims, K=K, hidden=(8,), n=4, repeats=1, min_repeat_seconds=1e-4)
    assert set(results) == {(model, D) for model in timing.MODEL_NAMES for D in dims}
    expected = {"MAF": lambda D: (K, K * D), "IAF": lambda D: (K * D, K), "RealNVP": lambda D: (K, K)}
    for (model, D), point in results.items():
        assert (point.model, point.D, point.K) == (model, D, K)
        assert (point.density_passes, point.sampling_passes) == expected[model](D), f"{model}, D = {D}"
        assert isinstance(point.density, timing.Timing) and isinstance(point.sampling, timing.Timing)
        assert point.density.repeats == point.sampling.repeats == 1
        assert point.ratio == point.sampling.median / point.density.median
        assert point.num_params > 0
    assert results["MAF", 5].num_params == results["IAF", 5].num_params, "MAF and IAF share the MADE shape"


@pytest.mark.parametrize("fast", [True, False])
def test_measure_tradeoff_builds_its_flows_with_the_requested_fast_and_the_same_pass_counts(fast, monkeypatch):
    built = []
    build = timing._build_flow

    def recording_build(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(timing, "_build_flow", recording_build)
    K, dims = 2, (3, 4)
    results = timing.measure_tradeoff(dims=dims, K=K, hidden=(8,), n=4, repeats=1, min_repeat_seconds=1e-4,
                                      fast=fast)
    assert len(built) == len(results) == len(timing.MODEL_NAMES) * len(dims)
    assert all(flow.fast is fast for flow in built), "every timed flow must be built with the requested fast"
    assert all(point.fast is fast for point in results.values())
    expected = {"MAF": lambda D: (K, K * D), "IAF": lambda D: (K * D, K), "RealNVP": lambda D: (K, K)}
    for (model, D), point in results.items():  # the reference and the fast path make the same passes
        assert (point.density_passes, point.sampling_passes) == expected[model](D), f"{model}, D = {D}, fast={fast}"


def test_build_flow_passes_fast_to_every_flow_class():
    for model in timing.MODEL_NAMES:
        assert timing._build_flow(model, 4, 1, (8,), 0).fast is True, "fast=True is the default"
        assert timing._build_flow(model, 4, 1, (8,), 0, fast=False).fast is False


def test_measure_tradeoff_rejects_a_fast_that_is_not_a_bool():
    with pytest.raises(TypeError, match="fast"):
        timing.measure_tradeoff(dims=(2,), repeats=1, fast="no")


def test_measure_tradeoff_rejects_an_unknown_model_name():
    with pytest.raises(ValueError, match="model_names"):
        timing.measure_tradeoff(model_names=("NICE",), dims=(2,), repeats=1)


def test_tradeoff_table_has_one_row_per_point_and_a_markdown_form():
    results = timing.measure_tradeoff(dims=(2, 3), K=1, hidden=(4,), n=2, repeats=1, min_repeat_seconds=1e-4)
    text = timing.tradeoff_table(results)
    assert len(text.splitlines()) == 1 + len(results)
    markdown = timing.tradeoff_table(results, D=3, markdown=True).splitlines()
    assert markdown[0].startswith("| model") and len(markdown) == 2 + len(timing.MODEL_NAMES)


def test_blas_threads_reports_the_environment_without_changing_it(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    report = timing.blas_threads()
    assert report["OPENBLAS_NUM_THREADS"] == "1"
    assert "threadpoolctl" in report


def test_tune_malloc_for_timing_reports_whether_it_applied():
    # in a child process: the setting lasts for the life of the process that makes it
    code = "from maf_numpy import timing; print(timing.tune_malloc_for_timing())"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() in ("True", "False")


def test_loglog_figure_has_labelled_axes_and_slopes_in_the_legend():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from maf_numpy.plotting import plot_loglog_series

    fig, ax = plt.subplots()
    dims = [2, 4, 8]
    lines = plot_loglog_series(ax, dims, {"MAF": [1.0, 2.0, 4.0]}, slopes={"MAF": 1.0},
                               references={"y = D": dims})
    ax.legend()
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert len(lines) == 1 and "MAF: slope 1.00" in labels and "y = D" in labels
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() and ax.get_ylabel()
    plt.close(fig)
