"""The adb script's command lines and output parsing (no phone is attached here)."""

import pytest

from device_runtime.device_scripts import android_bench

# The summary lines LiteRT's benchmark_model prints (format from tensorflow/lite/tools/benchmark).
BENCHMARK_MODEL_OUTPUT = """
Inference timings in us: Init: 31874, First inference: 10250, Warmup (avg): 8221.6, Inference (avg): 7911.3
count=120 first=8304 curr=7893 min=7702 max=9134 avg=7911.3 std=231
Peak memory footprint (MB): init=3.1 overall=17.4
"""


def test_litert_output_becomes_harness_fields():
    result = android_bench.parse_litert(BENCHMARK_MODEL_OUTPUT)
    assert result["latency_ms_mean"] == pytest.approx(7.9113)
    assert result["first_inference_ms"] == pytest.approx(10.25) and result["load_ms"] == pytest.approx(31.874)
    assert result["runs"] == 120 and result["latency_ms_std"] == pytest.approx(0.231)
    assert result["latency_ms_p50"] is None  # this build printed no percentiles; none are invented
    assert result["peak_rss_bytes"] == int(17.4 * 2**20)


def test_newer_output_with_percentiles_and_scientific_means():
    output = ("count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628\n"
              "Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 5.81474e+04, Inference (avg): 6.37432e+04\n"
              "Overall peak memory footprint (MB) via periodic monitoring: 21.5\n")
    result = android_bench.parse_litert(output)
    assert result["latency_ms_p50"] == pytest.approx(51.891) and result["latency_ms_mean"] == pytest.approx(63.7432)
    assert result["runs"] == 1000 and result["peak_rss_bytes"] == int(21.5 * 2**20)


def test_unrecognised_output_is_an_error():
    with pytest.raises(ValueError, match="Inference timings"):
        android_bench.parse_litert("Segmentation fault")


def test_executorch_runner_output():
    result = android_bench.parse_executorch("Model executed successfully 100 time(s) in 512.0 ms.")
    assert result["runs"] == 100 and result["latency_ms_mean"] == pytest.approx(5.12)


def test_command_follows_the_protocol():
    command = android_bench.litert_command("/m.tflite", "/bm", 4, 10, 100, 2.0, "xnnpack")
    assert "--use_xnnpack=true" in command and "--use_gpu=false" in command
    assert "--num_threads=4" in command and "--min_secs=2.0" in command and "--warmup_runs=10" in command


def test_missing_adb_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    code = android_bench.main([str(tmp_path), "--runner", "x", "--device-name", "p", "--out", str(tmp_path / "o.json")])
    assert code == 2 and "adb not found" in capsys.readouterr().err
