import json

import numpy as np
import pytest

from pipeline.core.datasets import load_dataset
from pipeline.core.datasets.sentences import sentence_pairs, split_texts, tokenizer_dir
from pipeline.core.errors import ConfigError
from pipeline.intake.card import card_path


def test_sentences_dataset_is_tokenized_pairs_in_int64():
    splits = load_dataset("sentences")
    assert (len(splits.train), len(splits.calibration), len(splits.test)) == (208, 100, 200)
    for split in (splits.train, splits.calibration, splits.test):
        assert list(split.inputs) == ["input_ids", "attention_mask"]
        assert all(a.dtype == np.int64 and a.shape == (len(split), 128) for a in split.inputs.values())
        assert split.y is None and split.layout == "NC"
    mask = splits.test.inputs["attention_mask"]
    lengths = mask.sum(axis=1)
    assert mask[:, 0].all() and lengths.min() >= 8 and lengths.max() < 64
    np.testing.assert_array_equal(load_dataset("sentences").test.inputs["input_ids"], splits.test.inputs["input_ids"])
    assert load_dataset("sentences", seed=1).test.inputs["input_ids"][0].tolist() != splits.test.inputs["input_ids"][0].tolist()
    texts = split_texts()
    pairs = {first: second for _, first, second in sentence_pairs()}
    assert all(pairs[texts["test"][i]] == texts["test"][i + 1] for i in range(0, 200, 2))  # pairs stay adjacent
    assert not set(texts["test"]) & set(texts["train"])


def test_sentences_tokens_are_the_ones_autotokenizer_gives():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir()), local_files_only=True)
    expected = tokenizer(split_texts()["test"], padding="max_length", truncation=True, max_length=128, return_tensors="np")
    test = load_dataset("sentences").test
    for name in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(test.inputs[name], expected[name])


@pytest.fixture(scope="module")
def minilm_bundle(minilm_path):
    from pipeline.intake import load_model

    return load_model(str(minilm_path))


@pytest.fixture(scope="module")
def minilm_embeddings(minilm_bundle):
    """Embeddings of the first 16 test sentences (8 paraphrase pairs) from the materialized .pt2."""
    return minilm_bundle.predict(minilm_bundle.eval_data.take(16))


def test_materialized_minilm_is_a_two_input_embedding_bundle(minilm_path, minilm_bundle):
    import torch

    bundle = minilm_bundle.with_outputs()
    assert [(s.name, s.shape, s.dtype) for s in bundle.inputs] == [
        ("input_ids", (1, 128), "int64"), ("attention_mask", (1, 128), "int64")]
    assert bundle.task == "embedding" and len(bundle.eval_data) == 200 and len(bundle.calibration_data) == 100
    assert [(s.shape, s.dtype) for s in bundle.outputs] == [((None, 384), "float32")]
    assert list(torch.export.load(str(minilm_path)).graph_signature.user_outputs) == ["embedding"]
    card = json.loads(card_path(minilm_path).read_text())
    assert (card["dataset"], card["task"], card["training"]["seq_len"], card["training"]["licence"]) == (
        "sentences", "embedding", 128, "Apache-2.0")
    assert card["training"]["package_version"] == "0.1.0" and card["training"]["tokenizer"].endswith("tokenizer.json")


def test_paraphrases_are_nearer_than_unrelated_sentences(minilm_embeddings):
    embeddings = minilm_embeddings
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    similarity = embeddings @ embeddings.T
    np.fill_diagonal(similarity, -1.0)
    partner = np.arange(16) ^ 1  # samples 2k and 2k+1 are paraphrases
    paraphrase = similarity[np.arange(16), partner]
    others = similarity.copy()
    others[np.arange(16), partner] = np.nan
    assert paraphrase.mean() > np.nanmean(others) + 0.3
    assert (np.argmax(similarity, axis=1) == partner).mean() >= 0.9


def test_output_is_the_hf_encoder_mean_pooled_and_normalized(minilm_embeddings):
    import torch

    from pipeline.zoo.minilm import load_encoder

    feed = load_dataset("sentences").test.take(16).inputs
    with torch.no_grad():
        hidden = load_encoder()(**{name: torch.from_numpy(a) for name, a in feed.items()}).last_hidden_state.numpy()
    mask = feed["attention_mask"][..., None].astype(np.float32)
    pooled = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    expected = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(minilm_embeddings, expected, atol=2e-5)


def test_minilm_is_a_pretrained_torch_entry(tmp_path):
    from pipeline.zoo import ZOO
    from pipeline.zoo.materialize import materialize
    from pipeline.zoo.train import train_zoo_model

    entry = ZOO.get("minilm-l6")
    assert list(entry.builders) == ["torch"] and entry.pretrained is not None and entry.task == "embedding"
    with pytest.raises(ConfigError, match="Available: torch"):
        materialize("minilm-l6", "keras", tmp_path / "m.keras")
    with pytest.raises(ConfigError, match="pretrained"):
        train_zoo_model("minilm-l6", "torch", tmp_path / "m.pt2")
    with pytest.raises(ConfigError, match="--seed does not apply"):
        materialize("minilm-l6", "torch", tmp_path / "m.pt2", seed=3)
    assert not list(tmp_path.iterdir())
