"""The core exporter test: export -> load in LiteRT -> run on real data -> compare with the source."""

import json

import numpy as np
import pytest

from device_runtime import RUNTIMES
from pipeline.export import export_bundle
from pipeline.intake import load_model
from quantize import quantization_config

MODES = ["none", "fp16", "dynamic-int8", "weight-int8", "int8"]


@pytest.fixture(scope="module")
def exports(model_paths, tmp_path_factory):
    """Every framework x mode exported once for this module."""
    root = tmp_path_factory.mktemp("tflite")
    results = {}
    for framework, path in model_paths.items():
        bundle = load_model(str(path))
        for mode in MODES:
            results[framework, mode] = (bundle, export_bundle(bundle, "tflite", quantization_config(mode), root / f"{framework}-{mode}"))
    return results


@pytest.mark.parametrize("framework", ["keras", "torch"])
@pytest.mark.parametrize("mode", MODES)
def test_export_passes_validation_and_writes_a_complete_manifest(exports, framework, mode):
    _, result = exports[framework, mode]
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["target"] == "tflite"
    assert manifest["source"]["framework"] == framework and len(manifest["source"]["sha256"]) == 64
    assert [f["name"] for f in manifest["files"]] == ["model.tflite"]
    assert manifest["size_bytes"] == (result.out_dir / "model.tflite").stat().st_size
    assert 0 < manifest["size_bytes_gzip"] < manifest["size_bytes"]
    assert {"python", "ai-edge-litert"} <= set(manifest["toolchain"])
    assert [s["config"]["mode"] for s in manifest["stages"]] == ([] if mode == "none" else [mode])
    delegation = manifest["delegation"]
    assert delegation["delegate"] == "xnnpack" and delegation["ops_total"] > 0
    assert delegation["ops_delegated"] + len(delegation["ops_not_delegated"]) <= delegation["ops_total"]
    if mode == "none":
        assert delegation["delegated_share"] == 1.0
    if delegation["ops_not_delegated"] and mode != "none":
        assert "slower" in delegation["warning"]
    validation = manifest["validation"]
    assert validation["passed"], validation["failures"]
    assert validation["samples"] == 360


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_int8_is_small_and_accurate(exports, framework):
    fp32 = exports[framework, "none"][1].manifest
    int8 = exports[framework, "int8"][1].manifest
    assert int8["size_bytes"] <= 0.30 * fp32["size_bytes"]
    drop = int8["validation"]["source_accuracy"] - int8["validation"]["artifact_accuracy"]
    assert drop <= 0.015
    assert int8["artifact_signature"]["inputs"][0]["dtype"] in ("float32", "int8")


@pytest.mark.parametrize("framework", ["keras", "torch"])
@pytest.mark.parametrize("mode", ["none", "int8"])
def test_artifact_reproduces_the_source_when_reloaded(exports, framework, mode):
    bundle, result = exports[framework, mode]
    session = RUNTIMES.get("litert").load(result.out_dir / "model.tflite", "xnnpack")
    x = bundle.eval_data.x
    outputs = session.run(x)
    source = bundle.predict(x)
    agreement = np.mean(outputs.argmax(1) == source.argmax(1))
    assert agreement >= (0.99 if mode == "none" else 0.97)
    if mode == "none":
        np.testing.assert_allclose(outputs, source, atol=1e-4)
