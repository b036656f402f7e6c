"""The steadiness check of the timing protocol, on fake timing sequences, in Python and in the TF.js runners' JS."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from device_runtime.device_scripts.edge_bench import Protocol, steadiness, time_runs

PROTOCOL_JS = Path(__file__).parents[2] / "device_runtime" / "tfjs_browser" / "protocol.js"
CHECKED = Protocol(warmup_runs=0, min_runs=40, min_duration_s=0.0, steady_blocks=4, steady_tolerance=0.10)


def transient(i: int) -> float:
    """10 slow samples (a cold cache), then a steady 1 ms."""
    return 5.0 if i < 10 else 1.0


def drift(i: int) -> float:
    """A level that keeps rising (another program taking the CPU): never settles."""
    return 1.0 + 0.05 * i


def noisy(i: int) -> float:
    """Steady with alternating noise of +-5 %."""
    return 1.0 + (0.05 if i % 2 else -0.05)


SEQUENCES = {"noisy": noisy, "transient": transient, "drift": drift}


def fake_run(sequence, protocol: Protocol) -> dict:
    """time_runs on a fake clock that the 'inference' advances by sequence(i) ms (the first call is untimed)."""
    state = {"now": 0.0, "calls": 0}

    def run(_: int) -> None:
        state["now"] += sequence(state["calls"] - 1) / 1000
        state["calls"] += 1

    return time_runs(run, 1, protocol, clock=lambda: state["now"])


def test_block_medians_and_their_spread():
    assert steadiness([1.0] * 8, 4, 0.1) == {"unsteady": False, "block_medians_ms": [1.0] * 4, "block_spread": 0.0}
    verdict = steadiness([2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 4, 0.1)
    assert verdict["unsteady"] is True and verdict["block_medians_ms"] == [2.0, 1.0, 1.0, 1.0]
    assert verdict["block_spread"] == pytest.approx(1.0)
    assert steadiness([1.0] * 7, 4, 0.1)["unsteady"] is None  # fewer than 2 samples a block: not judged
    assert steadiness([1.0, 9.0] * 8, 0, 0.1)["unsteady"] is None  # check off


def test_a_steady_run_stops_at_its_minimum():
    result = fake_run(noisy, CHECKED)
    assert result["runs"] == 40 and result["unsteady"] is False and result["block_spread"] < 0.10


def test_a_transient_is_outgrown_by_extending_the_run():
    result = fake_run(transient, CHECKED)
    assert result["unsteady"] is False
    assert 40 < result["runs"] < 120  # extended past the minimum until the slow start is a minority of a block
    assert result["latency_ms_p50"] == pytest.approx(1.0)


def test_a_run_that_never_settles_is_flagged_with_its_spread():
    result = fake_run(drift, CHECKED)
    assert result["unsteady"] is True and result["block_spread"] > 0.10
    assert len(result["block_medians_ms"]) == 4
    # minimum met at 40 runs / 79 ms; re-judged at 50, 62, 77 and 96 runs: the first check past 3 x 79 ms stops it
    assert result["runs"] == 96 and result["duration_s"] == pytest.approx(0.324)


def test_the_check_off_keeps_the_old_protocol():
    result = fake_run(drift, Protocol(warmup_runs=0, min_runs=40, min_duration_s=0.0, steady_blocks=0))
    assert result["runs"] == 40 and result["unsteady"] is None
    with pytest.raises(ValueError, match="steady_blocks"):
        Protocol(steady_blocks=1)
    with pytest.raises(ValueError, match="steady_extension"):
        Protocol(steady_extension=0.5)


NODE_SCRIPT = """
const p = require(process.argv[1]);
const sequences = { noisy: (i) => 1 + (i % 2 ? 0.05 : -0.05), transient: (i) => (i < 10 ? 5 : 1), drift: (i) => 1 + 0.05 * i };
(async () => {
  const out = {};
  for (const [name, seq] of Object.entries(sequences)) {
    let now = 0;
    let calls = 0;
    const timed = await p.timeSamples(async () => { now += seq(calls); calls += 1; }, JSON.parse(process.argv[2]),
      { now: () => now });
    out[name] = { runs: timed.latencies_ms.length, inferences: timed.inferences, latencies: timed.latencies_ms };
  }
  const grouped = await (async () => {
    let now = 0;
    const timed = await p.timeSamples(async () => { now += 0.3; }, { ...JSON.parse(process.argv[2]), min_sample_ms: 1 },
      { now: () => now });
    return { runs: timed.latencies_ms.length, inferences: timed.inferences, first: timed.latencies_ms[0] };
  })();
  process.stdout.write(JSON.stringify({ out, grouped }));
})();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_js_runners_follow_the_same_protocol():
    from dataclasses import asdict

    done = subprocess.run(["node", "-e", NODE_SCRIPT, str(PROTOCOL_JS), json.dumps(asdict(CHECKED))],
                          capture_output=True, text=True, timeout=60, check=True)
    reply = json.loads(done.stdout)
    for name, sequence in SEQUENCES.items():
        python = fake_run(sequence, CHECKED)
        js = reply["out"][name]
        assert js["runs"] == python["runs"], name
        verdict = steadiness(js["latencies"], CHECKED.steady_blocks, CHECKED.steady_tolerance)
        assert verdict["unsteady"] == python["unsteady"], name
    grouped = reply["grouped"]  # 0.3 ms inferences in samples of >= 1 ms: 4 per sample, reported per inference
    assert grouped["inferences"] == 4 * grouped["runs"] and grouped["first"] == pytest.approx(0.3)
