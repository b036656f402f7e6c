import numpy as np

from pipeline.validation import TOLERANCES, compare_outputs


def test_every_broken_tolerance_is_reported_at_once():
    source = np.eye(4, dtype=np.float32)
    artifact = np.roll(source, 1, axis=1)
    labels = np.arange(4)
    metrics, failures = compare_outputs(source, artifact, labels, TOLERANCES["none"])
    assert metrics["top1_agreement"] == 0.0
    assert metrics["source_accuracy"] == 1.0 and metrics["artifact_accuracy"] == 0.0
    assert len(failures) == 3


def test_identical_outputs_pass():
    source = np.random.default_rng(0).random((10, 3)).astype(np.float32)
    metrics, failures = compare_outputs(source, source.copy(), None, TOLERANCES["none"])
    assert failures == () and metrics["max_abs_error"] == 0.0
