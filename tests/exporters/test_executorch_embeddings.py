"""PyTorch -> ExecuTorch int8 keeps a text encoder's vocabulary table in 8 bits, and the `.pte` still runs."""

from __future__ import annotations

import numpy as np
import pytest

from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.harness import resolve_request, run_benchmark
from pipeline.export import export_bundle
from pipeline.intake.data import with_user_data
from pipeline.intake.memory import bundle_from_object
from quantize import quantization_config

VOCAB, WIDTH, SEQ = 8000, 64, 16


def tokens(count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = (np.arange(SEQ)[None] < rng.integers(4, SEQ + 1, size=(count, 1))).astype(np.int64)
    return {"input_ids": rng.integers(1, VOCAB, size=(count, SEQ)) * mask, "attention_mask": mask}


@pytest.fixture(scope="module")
def vocabulary_encoder():
    """Token ids + mask -> pooled embedding; the 8000 x 64 table is 95% of the weights."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, WIDTH)
            self.project = torch.nn.Linear(WIDTH, WIDTH)

        def forward(self, input_ids, attention_mask):
            hidden = self.project(self.embed(input_ids))
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    torch.manual_seed(0)
    example = {name: torch.from_numpy(array[:1]) for name, array in tokens(1, 0).items()}
    bundle = bundle_from_object(Encoder().eval(), example_inputs=example, name="vocabulary-encoder")
    return with_user_data(bundle, eval_data=tokens(32, seed=1), calibration=tokens(32, seed=2))


@pytest.mark.parametrize("mode", ["dynamic-int8", "int8"])
def test_int8_stores_the_embedding_table_in_8_bits_and_the_worker_runs_it(vocabulary_encoder, tmp_path, mode):
    float_dir, quantized_dir = tmp_path / "fp32", tmp_path / mode
    export_bundle(vocabulary_encoder, "executorch", quantization_config("none"), float_dir)
    manifest = export_bundle(vocabulary_encoder, "executorch", quantization_config(mode), quantized_dir).manifest
    ratio = (quantized_dir / "model.pte").stat().st_size / (float_dir / "model.pte").stat().st_size
    assert ratio <= 0.30, f"{mode} .pte is {ratio:.3f}x fp32: the embedding table stayed float"
    [stage] = [s for s in manifest["stages"] if s["name"] == "quantize"]
    assert stage["effect"]["embedding_tables"].startswith("1 as uint8 rows")
    assert manifest["validation"]["passed"], manifest["validation"]
    if mode != "dynamic-int8":
        return
    request = resolve_request(quantized_dir, "executorch", "xnnpack", "host", 1, Protocol(1, 3, 0.0))
    measurement = run_benchmark(request)  # a fresh worker process: it must find the embedding_byte kernel itself
    assert measurement.status == "ok", measurement.error
