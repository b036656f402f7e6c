"""What the stages that fine-tune (pruning, QAT) share: training data, the loss, the loops and the measured effect.

A fine-tune minimises one of two losses on the bundle's training split, from whatever source it came
(a zoo model's card, `--train-data`, the Python API's `train_data`):

- 'cross-entropy' against integer labels `y`, for a classifier (one output of class scores);
- 'distillation' otherwise (no labels, or several outputs): the mean squared error to the source model's
  own outputs on the training inputs, so an embedding or regression model keeps what it computed.

Every model input is fed (`bundle.feed`): positional tensors for PyTorch, a list for Keras. The effect
records the loss, the samples used, and the accuracy (labelled evaluation data, classifiers) and the
fidelity (outputs against the unchanged source model) before and after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.datasets import Dataset
from pipeline.core.errors import DataError
from pipeline.core.tensors import Feed, feed_length, slice_feed

LOSSES = ("cross-entropy", "distillation", "none")
TRAIN_DATA_FORM = ("--train-data FILE.npz (one array per input name, 'x' for a single input, plus integer labels "
                   "'y' for a classifier; without 'y' the model is fine-tuned to reproduce its own outputs)")
FIDELITY_SAMPLES = 512  # training inputs compared when there is no evaluation data


def training_data(bundle: ModelBundle, epochs: int, needs: str, fix: str) -> Dataset | None:
    """The bundle's training split (None when `epochs` is 0); DataError saying `needs`, then `fix`, without one."""
    return None if epochs == 0 else required_training_data(bundle, needs, fix)


def required_training_data(bundle: ModelBundle, needs: str, fix: str) -> Dataset:
    """The bundle's training split; DataError saying `needs`, then `fix`, when it has none."""
    data = bundle.train_data
    if data is None or len(data) == 0:
        what = "no training data" if data is None else f"an empty training split '{data.name}'"
        raise DataError(f"{needs}, but {bundle.source.path or 'the model'} has {what}. {fix}")
    return data


@dataclass(frozen=True)
class Objective:
    """A fine-tune's inputs and targets: labels (cross-entropy) or the source model's outputs (distillation)."""

    loss: str
    feed: Feed
    targets: tuple[np.ndarray, ...]
    probabilities: bool = False  # cross-entropy on a model ending in softmax takes the log of its outputs
    note: str = ""

    @property
    def samples(self) -> int:
        return feed_length(self.feed)


def objective_for(bundle: ModelBundle, data: Dataset) -> Objective:
    """Cross-entropy when `data` has labels and the model one output of class scores; distillation otherwise.

    Raises DataError when labels cannot be class ids of the model's single output.
    """
    feed = bundle.feed(data, "training data")
    probe = bundle.predict_outputs(slice_feed(feed, 0, bundle.static_batch or min(32, feed_length(feed))))
    if data.y is not None and len(probe) == 1:
        scores = probe[0]
        classes = scores.shape[-1] if scores.ndim == 2 else 0
        if not classes or int(data.y.max()) >= classes or int(data.y.min()) < 0:
            raise DataError(
                f"Training labels 'y' range over [{int(data.y.min())}, {int(data.y.max())}], but the model's output "
                f"has shape {list(scores.shape[1:])} per sample, not one score per class. Labels are class ids of a "
                "classifier's output; drop 'y' from the training data to fine-tune by distillation instead."
            )
        probabilities = bool(scores.min() >= 0 and np.allclose(scores.sum(axis=-1), 1.0, atol=1e-3))
        return Objective("cross-entropy", feed, (np.asarray(data.y, np.int64),), probabilities)
    non_float = [i for i, out in enumerate(probe) if out.dtype.kind != "f"]
    if non_float:
        raise DataError(f"Fine-tuning by distillation needs float outputs, but output(s) {non_float} of the model are "
                        f"{', '.join(str(probe[i].dtype) for i in non_float)}; fine-tune with one-shot instead "
                        "(fine_tune_epochs=0).")
    note = "" if data.y is None else f"labels 'y' unused: the model has {len(probe)} outputs, all distilled"
    targets = tuple(out.astype(np.float32) for out in bundle.predict_outputs(feed))
    return Objective("distillation", feed, targets, note=note)


def torch_outputs(result: Any) -> list[Any]:
    """A torch model's result (a tensor, a tuple/list, a dict or a model-output object) as a list of tensors."""
    import torch

    if isinstance(result, torch.Tensor):
        return [result]
    values = result.values() if hasattr(result, "values") and callable(result.values) else result
    return [value for value in values if isinstance(value, torch.Tensor)]


def _torch_loss(objective: Objective, outputs: list[Any], targets: list[Any]) -> Any:
    import torch

    if objective.loss == "cross-entropy":
        scores = outputs[0]
        logits = torch.log(scores.clamp_min(1e-12)) if objective.probabilities else scores
        return torch.nn.functional.cross_entropy(logits, targets[0])
    return sum(torch.nn.functional.mse_loss(out, target) for out, target in zip(outputs, targets, strict=True))


def train_torch_model(
    model: Any,
    objective: Objective,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    on_step: Callable[[int], None] | None = None,
    static_batch: int | None = None,
) -> None:
    """Adam on the objective's loss, every input fed positionally; `on_step(step)` runs before each batch.

    Works on an exported GraphModule too; one exported with a fixed batch size is trained in batches of
    exactly that size (the last, partial batch of an epoch is dropped).
    """
    import torch

    if static_batch:
        batch_size = static_batch
    torch.manual_seed(seed)
    inputs = [torch.from_numpy(np.ascontiguousarray(array)) for array in objective.feed.values()]
    targets = [torch.from_numpy(np.ascontiguousarray(target)) for target in objective.targets]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    step = 0
    model.train()
    for _ in range(epochs):
        order = torch.randperm(objective.samples, generator=generator)
        for start in range(0, objective.samples, batch_size):
            if on_step is not None:
                on_step(step)
            batch = order[start : start + batch_size]
            if static_batch and len(batch) < static_batch:
                break
            optimizer.zero_grad()
            outputs = torch_outputs(model(*(tensor[batch] for tensor in inputs)))
            _torch_loss(objective, outputs, [target[batch] for target in targets]).backward()
            optimizer.step()
            step += 1
    model.eval()


def keras_inputs(feed: Feed, count: int | None = None) -> Any:
    """The feed as a Keras model takes it: one array, or a list in input order (the first `count` samples)."""
    arrays = [array[:count] for array in feed.values()]
    return arrays[0] if len(arrays) == 1 else arrays


def fit_keras(model: Any, objective: Objective, epochs: int, batch_size: int, learning_rate: float,
              static_batch: int | None = None, callbacks: Sequence[Any] = ()) -> None:
    """Compile a tf_keras `model` with the objective's loss and Adam, then fit it (a fixed batch in that size)."""
    import tf_keras

    batch_size = static_batch or batch_size
    usable = objective.samples - objective.samples % static_batch if static_batch else objective.samples
    if objective.loss == "cross-entropy":
        loss: Any = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not objective.probabilities)
    else:
        loss = "mse"  # applied to every output and summed, as the torch loop does
    targets = [target[:usable] for target in objective.targets]
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss=loss)
    model.fit(keras_inputs(objective.feed, usable), targets[0] if len(targets) == 1 else targets,
              batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=list(callbacks))


@dataclass(frozen=True)
class Baseline:
    """The source model's outputs (and accuracy) on the data its optimized version is compared on."""

    feed: Feed | None
    data_name: str
    labels: np.ndarray | None
    outputs: list[np.ndarray]
    accuracy: float | None


def _accuracy(outputs: list[np.ndarray], labels: np.ndarray | None) -> float | None:
    if labels is None or len(outputs) != 1 or outputs[0].ndim != 2 or int(labels.max()) >= outputs[0].shape[-1]:
        return None
    return round(float(np.mean(np.argmax(outputs[0], axis=-1) == labels)), 6)


def baseline(bundle: ModelBundle) -> Baseline:
    """The source model on its evaluation data (accuracy when labelled), else on training inputs, else nothing."""
    if bundle.eval_data is not None:
        data, name = bundle.eval_data, "evaluation data"
    elif bundle.train_data is not None:
        data, name = bundle.train_data.take(FIDELITY_SAMPLES), "training data"
    else:
        return Baseline(None, "", None, [], None)
    feed = bundle.feed(data, name)
    outputs = bundle.predict_outputs(feed)
    labels = data.y if name == "evaluation data" else None
    return Baseline(feed, name, labels, outputs, _accuracy(outputs, labels))


def fidelity(reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean per-sample cosine similarity and relative L2 error of `outputs` against `reference`, over all outputs."""
    cosines, errors = [], []
    for ref, out in zip(reference, outputs, strict=True):
        ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
        out = np.asarray(out, np.float64).reshape(len(out), -1)
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
        dots = np.sum(ref * out, axis=1)
        cosines.append(np.where(norms > 0, dots / np.maximum(norms, 1e-30), np.all(ref == out, axis=1)))
        errors.append(np.linalg.norm(out - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12))
    return {"cosine_mean": round(float(np.mean(np.concatenate(cosines))), 6),
            "relative_error_mean": round(float(np.mean(np.concatenate(errors))), 6)}


def fine_tune_effect(base: Baseline, after: ModelBundle, objective: Objective | None, epochs: int,
                     seconds: float) -> dict[str, Any]:
    """The effect fields every fine-tuning stage records: loss, samples, accuracy and fidelity before and after.

    `after` is the bundle holding the optimized model (run with the source framework's predictor).
    """
    effect: dict[str, Any] = {
        "fine_tune_epochs": epochs,
        "loss": objective.loss if objective is not None else "none",
        "train_samples": objective.samples if objective is not None else 0,
        "fine_tune_seconds": round(seconds, 3),
        "accuracy_before": base.accuracy,
        "accuracy_after": None,
        "fidelity": None,
    }
    if objective is not None and objective.note:
        effect["loss_note"] = objective.note
    if base.feed is not None:
        outputs = after.predict_outputs(base.feed)
        effect["accuracy_after"] = _accuracy(outputs, base.labels)
        effect["fidelity"] = {"data": base.data_name, "samples": feed_length(base.feed),
                              "against": "the source model before this stage", **fidelity(base.outputs, outputs)}
    return effect
