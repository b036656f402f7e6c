import numpy as np
import pytest

from device_runtime import RUNTIMES
from pipeline.core.errors import ArtifactError, UnknownNameError


@pytest.fixture(scope="module")
def float_artifact(torch_model_path, tmp_path_factory):
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from quantize import quantization_config

    bundle = load_model(str(torch_model_path))
    out = tmp_path_factory.mktemp("litert") / "artifact"
    export_bundle(bundle, "tflite", quantization_config("none"), out)
    return bundle, out / "model.tflite"


def test_reference_kernels_and_xnnpack_agree(float_artifact):
    bundle, model_file = float_artifact
    runtime = RUNTIMES.get("litert")
    x = bundle.eval_data.x[:32]
    cpu = runtime.load(model_file, "cpu")
    xnnpack = runtime.load(model_file, "xnnpack", threads=1)
    np.testing.assert_allclose(cpu.run(x), xnnpack.run(x), atol=1e-5)
    assert "DELEGATE" in xnnpack.op_names()
    assert "DELEGATE" not in cpu.op_names()


def test_unknown_delegate_lists_the_options(float_artifact):
    with pytest.raises(UnknownNameError, match="Available: cpu, gpu, xnnpack"):
        RUNTIMES.get("litert").load(float_artifact[1], "xnnpak")


def test_truncated_model_is_an_artifact_error(float_artifact, tmp_path):
    truncated = tmp_path / "model.tflite"
    truncated.write_bytes(float_artifact[1].read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="truncated, corrupt"):
        RUNTIMES.get("litert").load(truncated, "xnnpack")


def test_delegated_nodes_walks_back_from_each_delegate():
    from device_runtime.litert import delegated_nodes

    ops = [
        {"index": 0, "op_name": "CONV_2D", "inputs": [0, 5], "outputs": [1]},
        {"index": 1, "op_name": "SOFTMAX", "inputs": [1], "outputs": [2]},
        {"index": 2, "op_name": "RESHAPE", "inputs": [2], "outputs": [3]},
        {"index": 3, "op_name": "DELEGATE", "inputs": [0, 5], "outputs": [1]},
        {"index": 4, "op_name": "DELEGATE", "inputs": [2], "outputs": [3]},
    ]
    assert delegated_nodes(ops) == {0, 2}
