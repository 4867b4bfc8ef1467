"""The example scripts run as written (in fast mode) and do what they say."""

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_nflib_port_trains_five_flows_and_each_saves_and_loads_bit_for_bit(monkeypatch):
    monkeypatch.setenv("MAF_FAST", "1")
    results = runpy.run_path(str(EXAMPLES / "nflib_moons.py"), run_name="example")["main"]()
    assert set(results) == {"NICE", "RealNVP", "MAF", "IAF", "Glow-style"}
    assert all(same for _, same in results.values())
    assert all(nll < 3.5 for nll, _ in results.values())  # better than the untrained N(0, I) start on moons
