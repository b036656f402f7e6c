"""Inputs for models that are not image classifiers: two sentences for a text encoder, an .npz for anything else."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from demo_app.inference import Runner, input_specs, timed
from pipeline.core.errors import ConfigError, DataError
from pipeline.core.tensors import Feed, TensorSpec, bind_feed, slice_feed
from pipeline.report import task_of

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
MAX_NPZ_BYTES = 50 * 2**20
SHOWN_VALUES = 6
TEXT, IMAGE, TENSORS = "text", "image", "tensors"


class FeedInputError(ValueError):
    """An upload or text that cannot become the model's inputs; the message says why and what would work."""


def input_kind(manifest: Mapping[str, Any]) -> str:
    """How the Try-it page feeds this model: TEXT (a text encoder taking token ids), IMAGE (a single-input
    classifier: samples, uploads, drawings) or TENSORS (any other model: samples or an .npz per input name)."""
    specs = input_specs(manifest)
    names = {spec.name for spec in specs}
    if (task_of(manifest) == "embedding" and "input_ids" in names and names <= set(TOKEN_INPUTS)
            and all(spec.dtype.startswith("int") for spec in specs)):
        return TEXT
    return IMAGE if len(specs) == 1 and task_of(manifest) == "classification" else TENSORS


def tokenizer_folder(manifest: Mapping[str, Any], source: Path | None) -> Path:
    """The folder of the model's tokenizer: the manifest's `source.tokenizer`, else the model card's
    `training.tokenizer` (a tokenizer.json or its folder), else the tokenizer of the dataset its evaluation
    data was tokenized with. ConfigError when none of them is there."""
    from pipeline.intake.card import read_card

    card = read_card(source) if source is not None else None
    recorded = [(manifest.get("source") or {}).get("tokenizer"), card.training.get("tokenizer") if card else None]
    for where in filter(None, recorded):
        path = Path(where)
        folder = path.parent if path.is_file() else path
        if (folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file():
            return folder
    dataset = (manifest.get("eval_data") or {}).get("dataset") or (manifest.get("validation") or {}).get("dataset")
    if dataset == "sentences":
        from pipeline.core.datasets.sentences import tokenizer_dir

        return tokenizer_dir()
    raise ConfigError(f"No tokenizer found for this model (recorded: {', '.join(map(str, filter(None, recorded))) or 'none'}). "
                      "Name its folder in the model card, `training.tokenizer` (a tokenizer.json or the folder holding it).")


def load_tokenizer(folder: Path) -> Any:
    """A transformers tokenizer from a local folder (never the hub)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def encode(tokenizer: Any, text: str, specs: Sequence[TensorSpec]) -> Feed:
    """One sentence as the model's token inputs (a batch of one), padded and truncated to its sequence length."""
    if not text.strip():
        raise FeedInputError("The sentence is empty; type a sentence.")
    length = specs[0].shape[1] if len(specs[0].shape) > 1 else None
    encoded = tokenizer(text, padding="max_length" if length else False, truncation=length is not None,
                        max_length=length, return_tensors="np")
    ids = np.asarray(encoded["input_ids"])
    arrays = {spec.name: np.asarray(encoded[spec.name]) if spec.name in encoded else np.zeros_like(ids)
              for spec in specs}
    return bind_feed(specs, arrays, "the tokenized sentence")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


@dataclass(frozen=True)
class Embeddings:
    """One runner's embeddings of two sentences and the median latency of one call (ms)."""

    name: str
    runtime: str
    vectors: tuple[np.ndarray, np.ndarray]
    latency_ms: float

    @property
    def similarity(self) -> float:
        return cosine(*self.vectors)


def embedding_output(outputs: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
    """The output named 'embedding', else the first one."""
    return outputs[list(names).index("embedding")] if "embedding" in names else outputs[0]


def embed_pair(runner: Runner, feeds: tuple[Feed, Feed], names: Sequence[str]) -> Embeddings:
    """Both sentences through `runner`, one call each (a model exported for batch 1 takes nothing else)."""
    results = [timed(runner, feed) for feed in feeds]
    vectors = tuple(embedding_output(outputs, names)[0] for outputs, _ in results)
    return Embeddings(runner.name, runner.runtime, (vectors[0], vectors[1]), float(np.mean([t for _, t in results])))


def similarity_rows(results: Sequence[tuple[str, Embeddings | None, str]]) -> list[dict[str, Any]]:
    """A table row per runner: the sentences' cosine similarity, and how close its embeddings are to the
    first source model's (mean cosine over the two sentences)."""
    reference = next((e for name, e, _ in results if e is not None and name.startswith("source:")), None)
    rows = []
    for name, found, error in results:
        to_source = (None if found is None or reference is None
                     else float(np.mean([cosine(a, b) for a, b in zip(found.vectors, reference.vectors, strict=True)])))
        rows.append({"model": name, "runtime": found.runtime if found else None,
                     "similarity": found.similarity if found else None, "embedding vs source": to_source,
                     "latency ms (this call)": found.latency_ms if found else None, "note": error})
    return rows


def read_npz(data: bytes, specs: Sequence[TensorSpec]) -> Feed:
    """An uploaded .npz (one array per input name; 'y' ignored) as a feed of its first sample."""
    if not data:
        raise FeedInputError("The file is empty. Upload an .npz with one array per input name.")
    if len(data) > MAX_NPZ_BYTES:
        raise FeedInputError(f"The file is {len(data) / 2**20:.1f} MiB; upload an .npz under {MAX_NPZ_BYTES // 2**20} MiB.")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files if name != "y"}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError):
        raise FeedInputError("This file is not an .npz this app can read; write it with numpy.savez(path, "
                             f"{', '.join(f'{s.name}=...' for s in specs)}).") from None
    if all(s.name in arrays and arrays[s.name].ndim == len(s.shape) - 1 for s in specs):
        arrays = {name: x[None] for name, x in arrays.items()}  # one sample without its batch dimension
    try:
        return slice_feed(bind_feed(specs, arrays, "The uploaded .npz"), 0, 1)
    except DataError as exc:
        raise FeedInputError(str(exc)) from None


def output_rows(runner: Runner, feed: Feed, names: Sequence[str]) -> list[dict[str, Any]]:
    """A row per output of `runner` on `feed`: its name, shape and first values, and the call's latency."""
    outputs, latency = timed(runner, feed)
    return [{"model": runner.name, "runtime": runner.runtime, "output": names[i] if i < len(names) else f"output_{i}",
             "shape": "x".join(map(str, out.shape)),
             "first values": ", ".join(f"{v:.4g}" for v in out.ravel()[:SHOWN_VALUES]) + (" ..." if out.size > SHOWN_VALUES else ""),
             "latency ms (this call)": latency} for i, out in enumerate(outputs)]
