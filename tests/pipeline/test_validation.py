import json

import numpy as np
import pytest

from pipeline.core.errors import ConfigError
from pipeline.validation import (
    compare_outputs,
    detect_task,
    match_outputs,
    output_kinds,
    parse_tolerances,
    tolerance_for,
)
from pipeline.validation.metrics import neighbour_agreement


def _strict_json(result) -> dict:
    return json.loads(json.dumps(result.to_json(), allow_nan=False))


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _logits(samples: int = 200, classes: int = 10, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(samples, classes)) * 4).astype(np.float32)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _rotated(embedding: np.ndarray, cosine: np.ndarray, seed: int = 1) -> np.ndarray:
    """Unit rows at exactly `cosine` (per row) from `embedding`'s rows."""
    direction = np.random.default_rng(seed).normal(size=embedding.shape)
    direction = _unit(direction - np.sum(direction * embedding, axis=1, keepdims=True) * embedding)
    cosine = np.asarray(cosine, np.float64)[:, None]
    return cosine * embedding + np.sqrt(1 - cosine**2) * direction


def test_every_broken_tolerance_is_reported_at_once():
    source = np.eye(4, dtype=np.float32)
    artifact = np.roll(source, 1, axis=1)
    result = compare_outputs(source, artifact, np.arange(4), tolerance_for("none"))
    assert result.top1_agreement == 0.0 and result.source_accuracy == 1.0 and result.artifact_accuracy == 0.0
    assert result.failures == ("max_abs_error 1 > 0.0001 (output 'output_0')",
                               "top1_agreement 0 < 0.99 (output 'output_0')",
                               "accuracy_drop 1 > 0.005 (output 'output_0')")


def test_qat_is_judged_on_agreement_and_accuracy_not_on_output_error():
    source = np.tile([[0.55, 0.45]], (100, 1)).astype(np.float32)
    moved = source.copy()
    moved[0] = [0.45, 0.55]  # one boundary sample flips: error 0.1 here, up to ~0.8 in real models
    moved[1:] = [0.99, 0.01]  # confident after the fine-tune: large error, same prediction
    labels = np.zeros(100, dtype=int)
    result = compare_outputs(source, moved, labels, tolerance_for("qat-int8"))
    assert result.max_abs_error > 0.4 and result.passed
    assert compare_outputs(source, moved, labels, tolerance_for("int8")).failures == (
        "max_abs_error 0.44 > 0.35 (output 'output_0')",)


@pytest.mark.parametrize("task", ["auto", "classification", "embedding", "regression"])
def test_nan_in_the_artifact_fails_in_every_task_and_the_record_stays_strict_json(task):
    source = _softmax(_logits())
    artifact = np.full_like(source, np.nan)
    result = compare_outputs(source, artifact, None, tolerance_for("qat-int8"), task=task, names=["probs"])
    record = _strict_json(result)
    assert record["passed"] is False
    assert record["failures"] == ["NaN or infinite values: 2000 of 2000 in the artifact's output, 0 of 2000 in the "
                                  "source's (output 'probs')"]
    assert record["outputs"][0]["metrics"] == {"non_finite_artifact": 2000, "non_finite_source": 0}
    assert record["headline"]["value"] is None and record["max_abs_error"] is None


def test_an_infinite_value_in_the_source_fails_too():
    source = np.random.default_rng(0).normal(size=(8, 4, 4, 1))
    source[3, 0, 0, 0] = np.inf
    result = compare_outputs(source, np.zeros_like(source), None, tolerance_for("int8"))
    assert not result.passed and "1 of 128 in the source's" in result.failures[0]
    _strict_json(result)


def test_logits_with_the_same_argmax_but_moved_values_pass_int8_classification():
    """The ViT case: a constant shift (softmax-invariant) plus a 10% scale moves raw logits by > 2, not the verdict."""
    logits = _logits()
    labels = logits.argmax(1)
    labels[:10] = (labels[:10] + 1) % 10  # 95% accuracy, in both
    artifact = logits * 1.1 + 2.0
    result = compare_outputs(logits, artifact, labels, tolerance_for("int8"))
    assert result.passed, result.failures
    assert result.task == "classification" and result.outputs[0]["kind"] == "logits"
    assert np.abs(artifact - logits).max() > 2 and result.max_abs_error < 0.35  # measured on probabilities
    assert result.top1_agreement == 1.0 and result.source_accuracy == result.artifact_accuracy == 0.95
    assert result.headline == {"metric": "accuracy", "label": "accuracy", "value": 0.95}


def test_a_flipped_prediction_in_logits_is_caught_on_probabilities():
    logits = np.array([[2.0, 0.0], [0.0, 2.0]] * 50, np.float32)
    artifact = logits.copy()
    artifact[0:10:2] = [0.0, 2.0]  # 5 of the 50 rows that favoured class 0
    result = compare_outputs(logits, artifact, None, tolerance_for("int8"), task="classification")
    assert result.top1_agreement == 0.95
    assert result.failures == ("max_abs_error 0.762 > 0.35 (output 'output_0')",
                               "top1_agreement 0.95 < 0.97 (output 'output_0')")
    assert result.headline == {"metric": "top1_agreement", "label": "agreement", "value": 0.95}


def test_a_dense_map_is_never_judged_by_top1_and_gets_sqnr_and_relative_l2():
    rng = np.random.default_rng(0)
    source = rng.uniform(size=(16, 12, 12, 1))
    noise = rng.normal(size=source.shape)
    artifact = source + noise * np.linalg.norm(source) / np.linalg.norm(noise) * 0.1  # relative L2 exactly 0.1
    result = compare_outputs(source, artifact, np.zeros(16, dtype=int), tolerance_for("int8"))
    metrics = result.outputs[0]["metrics"]
    assert result.task == "regression" and result.outputs[0]["kind"] == "dense"
    assert "top1_agreement" not in metrics and result.top1_agreement is None
    assert metrics["relative_l2"] == pytest.approx(0.1) and metrics["sqnr_db"] == pytest.approx(20.0)
    assert result.headline == {"metric": "sqnr_db", "label": "SQNR dB", "value": pytest.approx(20.0)}
    strict = compare_outputs(source, artifact, None, tolerance_for("none"), names=["depth"])
    assert strict.failures == ("sqnr_db 20 < 40 (output 'depth')",)
    with pytest.raises(ConfigError, match="Task 'classification' needs an output of class scores"):
        compare_outputs(source, artifact, None, tolerance_for("int8"), task="classification")


def test_identical_outputs_have_a_finite_sqnr():
    source = np.random.default_rng(0).normal(size=(4, 3))
    record = _strict_json(compare_outputs(source, source.copy(), None, tolerance_for("none"), task="regression"))
    assert record["passed"] and record["headline"]["value"] == 200.0 and record["outputs"][0]["metrics"]["relative_l2"] == 0


def test_embeddings_pass_and_fail_on_cosine_mean_and_worst():
    embedding = _unit(np.random.default_rng(0).normal(size=(100, 32)))
    cosine = np.full(100, 0.995)
    close = compare_outputs(embedding, _rotated(embedding, cosine), None, tolerance_for("int8"), names=["embedding"])
    metrics = close.outputs[0]["metrics"]
    assert close.task == "embedding" and close.outputs[0]["kind"] == "embedding"
    assert metrics["cosine_mean"] == pytest.approx(0.995) and metrics["cosine_worst"] == pytest.approx(0.995)
    assert close.headline == {"metric": "cosine_mean", "label": "cosine", "value": pytest.approx(0.995)}
    cosine[7] = 0.9
    one_off = compare_outputs(embedding, _rotated(embedding, cosine), None, tolerance_for("int8"), names=["embedding"])
    assert one_off.failures == ("cosine_worst 0.9 < 0.95 (output 'embedding')",)
    far = compare_outputs(embedding, _rotated(embedding, np.full(100, 0.98)), None, tolerance_for("int8"))
    assert "cosine_mean 0.98 < 0.99 (output 'output_0')" in far.failures
    near = compare_outputs(embedding, _rotated(embedding, np.full(100, 0.99957)), None, tolerance_for("none"))
    assert near.failures[0] == "cosine_mean 0.9996 < 0.9999 (output 'output_0')"  # never "1 < 0.9999"


def test_neighbour_agreement_counts_the_neighbours_kept():
    def on_circle(degrees):
        radians = np.radians(degrees)
        return np.stack([np.cos(radians), np.sin(radians)], axis=1)

    source = on_circle([0, 10, 50, 60])  # nearest: 0->10, 10->0, 50->60, 60->50
    assert neighbour_agreement(source, on_circle([0, 10, 50, 60]), k=1) == 1.0
    assert neighbour_agreement(source, on_circle([0, 10, 50, 22]), k=1) == 0.75  # 22's nearest is now 10
    assert neighbour_agreement(source[:1], source[:1]) is None


def test_shuffled_neighbours_fail_on_neighbour_agreement():
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(20, 16)))
    embedding = _unit(np.repeat(centres, 10, axis=0) + rng.normal(size=(200, 16)) * 0.1)  # 20 clusters of 10
    shuffled = embedding.copy()
    for start in range(0, 200, 10):  # same rows; neighbours within each cluster now random
        shuffled[start:start + 10] = _unit(centres[start // 10] + rng.normal(size=(10, 16)) * 0.1)
    kept = compare_outputs(embedding, embedding + rng.normal(size=embedding.shape) * 1e-4, None, tolerance_for("int8"))
    assert kept.passed and kept.outputs[0]["metrics"]["neighbour_agreement"] > 0.95
    neighbours_only = tolerance_for("int8", {"min_cosine_mean": None, "min_cosine_worst": None})
    moved = compare_outputs(embedding, shuffled, None, neighbours_only)
    assert len(moved.failures) == 1 and moved.failures[0].startswith("neighbour_agreement 0.")
    assert moved.failures[0].endswith(f"< {tolerance_for('int8').min_neighbour_agreement:g} (output 'output_0')")


def test_auto_task_reads_the_outputs_and_the_labels():
    rng = np.random.default_rng(0)
    logits, labels = _logits(), np.zeros(200, dtype=int)
    embedding, depth = _unit(rng.normal(size=(200, 16))), rng.uniform(size=(200, 8, 8, 1))
    assert output_kinds([_softmax(logits), logits, embedding, depth]) == ["probabilities", "dense", "embedding", "dense"]
    assert output_kinds([logits, embedding, depth]) == ["logits", "embedding", "dense"]
    assert output_kinds([logits[:, :4]], labels=np.arange(200) % 10) == ["dense"]  # too few columns for the labels
    assert output_kinds([logits[:, :4]], class_names=[str(i) for i in range(10)]) == ["dense"]
    assert output_kinds([rng.normal(size=(200,)), rng.normal(size=(200, 1))]) == ["dense", "dense"]
    assert detect_task(["probabilities", "dense"], labelled=False) == "classification"
    assert detect_task(["logits"], labelled=True) == "classification"
    assert detect_task(["logits"], labelled=False) == "embedding"
    assert detect_task(["embedding"], labelled=True) == "embedding"
    assert detect_task(["dense", "dense"], labelled=True) == "regression"
    assert compare_outputs(logits, logits, labels, tolerance_for("none")).task == "classification"
    assert compare_outputs(logits, logits, None, tolerance_for("none"), class_names="0123456789").task == "classification"
    assert compare_outputs(logits, logits, None, tolerance_for("none")).task == "embedding"


def test_a_named_task_is_not_second_guessed_by_the_class_names():
    features, names = np.abs(np.random.default_rng(0).normal(size=(50, 64))), [str(i) for i in range(10)]
    assert output_kinds([features], class_names=names) == ["dense"]  # 64 columns cannot score 10 classes
    assert output_kinds([features], class_names=names, task="embedding") == ["logits"]
    result = compare_outputs(features, features, np.arange(50) % 10, tolerance_for("none"), task="embedding",
                             class_names=names)
    assert result.passed and result.outputs[0]["metrics"]["cosine_mean"] == pytest.approx(1.0)


def test_two_outputs_are_both_judged_each_its_own_way():
    rng = np.random.default_rng(0)
    probabilities, boxes = _softmax(_logits()), rng.uniform(size=(200, 4))
    labels = probabilities.argmax(1)
    moved_boxes = boxes + 0.2 * rng.normal(size=boxes.shape)  # about 9 dB
    wrong = np.roll(probabilities, 1, axis=1)
    result = compare_outputs([probabilities, boxes], [wrong, moved_boxes], labels, tolerance_for("int8"),
                             names=["classes", "box"])
    assert result.task == "classification" and [o["kind"] for o in result.outputs] == ["probabilities", "dense"]
    assert [f.rsplit("(", 1)[1] for f in result.failures] == ["output 'classes')"] * 3 + ["output 'box')"]
    assert result.failures[-1].startswith("sqnr_db ")
    assert "top1_agreement" not in result.outputs[1]["metrics"] and result.top1_agreement == 0.0
    regression = compare_outputs([probabilities, boxes], [probabilities, moved_boxes], labels, tolerance_for("int8"),
                                 task="regression", names=["classes", "box"])
    assert set(regression.outputs[0]["metrics"]) == {"sqnr_db", "relative_l2", "max_abs_error", "mean_abs_error"}


def test_artifact_outputs_are_matched_by_position_then_by_unique_shape():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 3)), rng.normal(size=(10, 5, 5, 1))
    assert [m.shape for m in match_outputs([a, b], [b, a])] == [(10, 3), (10, 5, 5, 1)]
    assert match_outputs([b], [b.reshape(10, 5, 5)])[0].shape == (10, 5, 5, 1)
    assert match_outputs([a, b], [a]) == "the artifact has 1 outputs [10x3], the source 2 [10x3, 10x5x5x1]"
    result = compare_outputs([a, b], [a, rng.normal(size=(10, 7))], None, tolerance_for("none"), task="regression")
    assert result.failures == ("the artifact's outputs [10x3, 10x7] do not match the source's [10x3, 10x5x5x1] by "
                               "position or by unique shape",)
    assert [o["metrics"] for o in _strict_json(result)["outputs"]] == [{}, {}]


def test_tolerance_names_and_values_are_checked_with_the_valid_names_listed():
    assert parse_tolerances(["min_cosine_mean=0.98", "max_abs_error = none", "min_sqnr_db=-3"]) == {
        "min_cosine_mean": 0.98, "max_abs_error": None, "min_sqnr_db": -3.0}
    with pytest.raises(ConfigError, match=r"Unknown tolerance 'min_cosine'.*Valid names: max_abs_error, "
                                          r"min_top1_agreement, .*min_cosine_mean.* Did you mean 'min_cosine_mean'"):
        parse_tolerances(["min_cosine=0.9"])
    with pytest.raises(ConfigError, match=r"Unknown tolerance 'min_sqnr_db0.5'.*Write NAME=VALUE"):
        parse_tolerances(["min_sqnr_db0.5"])
    with pytest.raises(ConfigError, match=r"'high' is not a number.*min_sqnr_db=none.*Valid names: max_abs_error"):
        parse_tolerances(["min_sqnr_db=high"])
    with pytest.raises(ConfigError, match=r"min_cosine_worst must be in \[-1, 1\].*got 1.5"):
        parse_tolerances(["min_cosine_worst=1.5"])
    with pytest.raises(ConfigError, match="min_sqnr_db must be a finite number of dB"):
        parse_tolerances(["min_sqnr_db=nan"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_tolerances(["min_sqnr_db=10", "min_sqnr_db=12"])


def test_overrides_apply_and_are_recorded():
    rng = np.random.default_rng(0)
    source = rng.uniform(size=(16, 8, 8, 1))
    artifact = source + rng.normal(size=source.shape) * 0.3
    default = compare_outputs(source, artifact, None, tolerance_for("int8"))
    assert not default.passed and default.failures[0].startswith("sqnr_db ")
    tolerance = tolerance_for("int8", parse_tolerances(["min_sqnr_db=3", "max_relative_l2=0.9"]))
    relaxed = _strict_json(compare_outputs(source, artifact, None, tolerance))
    assert relaxed["passed"] and relaxed["tolerances"]["min_sqnr_db"] == 3 and relaxed["tolerances"]["max_relative_l2"] == 0.9
    assert relaxed["tolerances"]["max_abs_error"] == tolerance_for("int8").max_abs_error
    with pytest.raises(ConfigError, match="Unknown tolerance 'min_snr'.*Valid names"):
        tolerance_for("int8", {"min_snr": 3})
    with pytest.raises(ConfigError, match="mode 'int8': max_relative_l2 must be > 0"):
        tolerance_for("int8", {"max_relative_l2": 0})


def test_the_record_has_the_documented_keys():
    record = _strict_json(compare_outputs(_logits(), _logits(), np.zeros(200, dtype=int), tolerance_for("none")))
    assert list(record) == ["task", "samples", "passed", "failures", "tolerances", "headline", "outputs",
                            "max_abs_error", "mean_abs_error", "top1_agreement", "source_accuracy",
                            "artifact_accuracy", "runtime", "delegate", "dataset"]
    assert record["samples"] == 200 and list(record["outputs"][0]) == ["name", "kind", "metrics"]


def test_an_unknown_task_lists_the_tasks():
    with pytest.raises(ConfigError, match="Unknown task 'embeding'. Available: auto, classification, embedding, "
                                          "regression. Did you mean 'embedding'"):
        compare_outputs(_logits(), _logits(), None, tolerance_for("none"), task="embeding")


def test_a_keras_logits_model_exported_to_int8_tflite_validates_in_the_real_runtime(tmp_path):
    import keras

    from pipeline.core.datasets import load_dataset
    from pipeline.export import export_bundle
    from pipeline.intake.memory import bundle_from_object
    from quantize import quantization_config

    digits = load_dataset("digits")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10)], name="digits_logits")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.train.x, digits.train.y, epochs=3, batch_size=64, verbose=0)
    bundle = bundle_from_object(model).with_data(eval_data=digits.test, calibration_data=digits.calibration)
    result = export_bundle(bundle, "tflite", quantization_config("int8"), tmp_path / "int8")
    validation = json.loads((tmp_path / "int8" / "manifest.json").read_text(), parse_constant=pytest.fail)["validation"]
    assert validation == result.manifest["validation"]
    assert validation["passed"], validation["failures"]
    assert validation["task"] == "classification" and validation["outputs"][0]["kind"] == "logits"
    assert validation["samples"] == len(digits.test) and validation["runtime"] == "litert"
    assert validation["top1_agreement"] >= 0.97 and validation["source_accuracy"] > 0.8
    assert validation["headline"]["metric"] == "accuracy"
    assert validation["outputs"][0]["metrics"]["sqnr_db"] > 15
