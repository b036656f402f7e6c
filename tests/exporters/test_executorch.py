"""ExecuTorch target: export -> load in executorch.runtime -> run on real data -> compare with the source."""

import numpy as np
import pytest

from device_runtime import RUNTIMES
from exporters.executorch import ExecuTorchConfig
from pipeline.core.errors import ArtifactError, ConfigError, ExportError, UnsupportedRouteError
from pipeline.export import export_bundle
from pipeline.intake import load_model
from quantize import quantization_config


@pytest.fixture(scope="module")
def torch_bundle(torch_model_path):
    return load_model(str(torch_model_path))


@pytest.mark.parametrize("delegate,mode", [("xnnpack", "none"), ("xnnpack", "int8"), ("xnnpack", "dynamic-int8"), ("none", "none")])
def test_export_validates_in_executorch_runtime(torch_bundle, tmp_path, delegate, mode):
    result = export_bundle(torch_bundle, "executorch", quantization_config(mode), tmp_path / "pte",
                           config=ExecuTorchConfig(delegate))
    manifest = result.manifest
    assert manifest["validation"]["passed"], manifest["validation"]["failures"]
    assert manifest["validation"]["runtime"] == "executorch"
    assert manifest["export_config"] == {"delegate": delegate}
    delegation = manifest["delegation"]
    if delegate == "xnnpack":
        assert delegation["delegated_share"] == 1.0 and delegation["ops_not_delegated"] == []
    else:
        assert delegation["ops_delegated"] == 0 and "aten_convolution_default" in delegation["ops_not_delegated"]
    session = RUNTIMES.get("executorch").load(result.out_dir / "model.pte", "xnnpack" if delegate == "xnnpack" else "portable")
    x = torch_bundle.eval_data.x[:40]
    agreement = np.mean(session.run(x).argmax(1) == torch_bundle.predict(x).argmax(1))
    assert agreement >= 0.97


def test_int8_pte_is_small(torch_bundle, tmp_path):
    fp32 = export_bundle(torch_bundle, "executorch", quantization_config("none"), tmp_path / "fp32").manifest
    int8 = export_bundle(torch_bundle, "executorch", quantization_config("int8"), tmp_path / "int8").manifest
    assert int8["size_bytes"] <= 0.32 * fp32["size_bytes"]


def test_fp16_is_not_offered_on_this_route(torch_bundle, tmp_path):
    with pytest.raises(UnsupportedRouteError, match="Options: none, dynamic-int8, int8"):
        export_bundle(torch_bundle, "executorch", quantization_config("fp16"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_keras_reaches_executorch_through_onnx(keras_model_path, tmp_path):
    result = export_bundle(load_model(str(keras_model_path)), "executorch", quantization_config("none"), tmp_path / "out")
    manifest = result.manifest
    assert manifest["validation"]["passed"] and manifest["validation"]["top1_agreement"] >= 0.99
    assert "tf2onnx" in manifest["route"] and manifest["delegation"]["delegated_share"] == 1.0
    assert {"tf2onnx", "onnx2fx"} <= set(manifest["toolchain"])


def test_unknown_delegate_is_a_config_error():
    with pytest.raises(ConfigError, match="Options: xnnpack, none"):
        ExecuTorchConfig("vulkan")


def test_untraceable_model_points_at_the_construct(tmp_path):
    import torch

    from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec

    class DataDependent(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # Python control flow on a tensor value: torch.export cannot trace it
                return x * 2
            return x

    bundle = ModelBundle("torch", DataDependent(), TensorSpec("x", (None, 4), layout="NC"),
                         SourceInfo("torch", "factory", "tests:DataDependent", ""))
    with pytest.raises(ExportError, match="torch.export cannot trace DataDependent"):
        export_bundle(bundle, "executorch", quantization_config("none"), tmp_path / "out", run_validation=False)
    assert not (tmp_path / "out").exists()


def test_truncated_program_is_an_artifact_error(torch_bundle, tmp_path):
    result = export_bundle(torch_bundle, "executorch", quantization_config("none"), tmp_path / "pte")
    truncated = tmp_path / "truncated.pte"
    truncated.write_bytes((result.out_dir / "model.pte").read_bytes()[:2000])
    with pytest.raises(ArtifactError, match="could not load"):
        RUNTIMES.get("executorch").load(truncated, "xnnpack")


def test_eval_data_that_is_a_strided_view_still_lowers(torch_bundle, tmp_path):
    from pipeline.core.datasets import Dataset

    data = torch_bundle.eval_data
    view = np.asarray(data.x)[:, 0][:, None]  # x[:, None]: the new axis has stride 0, as a user's arrays often do
    assert 0 in view.strides
    bundle = torch_bundle.with_data(eval_data=Dataset(data.name, view, data.y, data.layout, data.labels))
    result = export_bundle(bundle, "executorch", quantization_config("none"), tmp_path / "pte")
    assert result.validation_passed
