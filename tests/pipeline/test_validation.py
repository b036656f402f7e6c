import numpy as np

from pipeline.validation import compare_outputs
from quantize import tolerance_for


def test_every_broken_tolerance_is_reported_at_once():
    source = np.eye(4, dtype=np.float32)
    artifact = np.roll(source, 1, axis=1)
    labels = np.arange(4)
    metrics, failures = compare_outputs(source, artifact, labels, tolerance_for("none"))
    assert metrics["top1_agreement"] == 0.0
    assert metrics["source_accuracy"] == 1.0 and metrics["artifact_accuracy"] == 0.0
    assert len(failures) == 3


def test_identical_outputs_pass():
    source = np.random.default_rng(0).random((10, 3)).astype(np.float32)
    metrics, failures = compare_outputs(source, source.copy(), None, tolerance_for("none"))
    assert failures == () and metrics["max_abs_error"] == 0.0


def test_qat_is_judged_on_agreement_and_accuracy_not_on_output_error():
    source = np.tile([[0.55, 0.45]], (100, 1)).astype(np.float32)
    moved = source.copy()
    moved[0] = [0.45, 0.55]  # one boundary sample flips: error 0.1 here, up to ~0.8 in real models
    moved[1:] = [0.99, 0.01]  # confident after the fine-tune: large error, same prediction
    labels = np.zeros(100, dtype=int)
    metrics, failures = compare_outputs(source, moved, labels, tolerance_for("qat-int8"))
    assert metrics["max_abs_error"] > 0.4 and failures == ()
    _, strict = compare_outputs(source, moved, labels, tolerance_for("int8"))
    assert strict == ("max abs error 0.44 > 0.35",)
