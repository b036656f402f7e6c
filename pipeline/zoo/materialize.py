"""Put a zoo model at a path: copy its shipped weights, export a pretrained model, or train it.

Trained zoo models ship in `pipeline/zoo/weights/` (`NAME-FRAMEWORK.keras|.pt2` + card), listed with their
sha256 in `weights/index.json`; they are what `pipeline train NAME --framework FRAMEWORK` writes.
After reproducing them there, `python -m pipeline.zoo.materialize` rewrites the index.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import ConfigError, IntakeError
from pipeline.core.files import sha256_file, staged_file, write_json_atomic
from pipeline.intake.card import card_path, read_card
from pipeline.zoo import ZOO
from pipeline.zoo.train import MODEL_SUFFIX, checked_model_path, default_model_path, train_zoo_model

WEIGHTS_DIR = Path(__file__).with_name("weights")
INDEX = WEIGHTS_DIR / "index.json"
INDEX_SCHEMA_VERSION = 1
ORIGINS = ("shipped", "trained", "pretrained")


@dataclass(frozen=True)
class Materialized:
    """A zoo model written to `path` (+ card): copied from the shipped weights, trained, or exported pretrained."""

    path: Path
    name: str
    framework: str
    origin: str
    seconds: float
    test_accuracy: float | None = None

    def describe(self) -> str:
        """One line saying what was done, for the CLI and the sweep's log."""
        accuracy = "" if self.test_accuracy is None else f": test accuracy {self.test_accuracy:.2%}"
        done = {"shipped": "Copied the shipped weights of", "trained": "Trained",
                "pretrained": "Exported the pretrained"}[self.origin]
        return f"{done} {self.name} ({self.framework}) in {self.seconds:.1f} s{accuracy}. Saved {self.path} (+ card)."


def shipped_path(name: str, framework: str) -> Path:
    """Where the shipped weights of `name` for `framework` live (whether or not they exist)."""
    return default_model_path(name, framework, WEIGHTS_DIR)


def read_index() -> dict[str, dict[str, object]]:
    """The shipped files by model file name: sha256 and size of the model and of its card."""
    if not INDEX.is_file():
        return {}
    return json.loads(INDEX.read_text())["files"]


def write_index() -> dict[str, dict[str, object]]:
    """Record every shipped model file and card (sha256, bytes) in `weights/index.json`; returns the entries."""
    files = {}
    for model in sorted(p for p in WEIGHTS_DIR.iterdir() if p.suffix in MODEL_SUFFIX.values()):
        card = card_path(model)
        files[model.name] = {"sha256": sha256_file(model), "size_bytes": model.stat().st_size,
                             "card_sha256": sha256_file(card), "card_size_bytes": card.stat().st_size}
    write_json_atomic(INDEX, {"schema_version": INDEX_SCHEMA_VERSION, "files": files})
    return files


def shipped_model(name: str, framework: str) -> Path | None:
    """The shipped model file of `name`/`framework` after checking its and its card's sha256; None when none ships."""
    path = shipped_path(name, framework)
    entry = read_index().get(path.name)
    if entry is None or not path.is_file():
        return None
    for file, digest in ((path, entry["sha256"]), (card_path(path), entry["card_sha256"])):
        if not file.is_file() or sha256_file(file) != digest:
            raise IntakeError(
                f"Shipped file {file} does not match {INDEX} (sha256 {digest}): it was replaced or damaged. "
                f"Reinstall the package, or reproduce it with `pipeline train {name} --framework {framework} "
                f"--out {path}` and then `python -m pipeline.zoo.materialize` to record it.")
    return path


def _copy(source: Path, target: Path) -> None:
    with staged_file(target) as tmp:
        shutil.copyfile(source, tmp)


def materialize(name: str, framework: str, path: Path | None = None, retrain: bool = False,
                seed: int | None = None) -> Materialized:
    """Write zoo model `name` for `framework` to `path` (default workspace/models/NAME-FRAMEWORK.SUFFIX) with its card.

    A pretrained entry is exported from its package; a trained one is copied from the shipped weights unless
    `retrain`, a `seed` other than the shipped one, or no shipped file asks for training.
    Raises UnknownNameError/ConfigError for a bad name, framework, suffix or a seed given to a pretrained model.
    """
    path = checked_model_path(name, framework, path)
    entry = ZOO.get(name)
    started = time.perf_counter()
    if entry.pretrained is not None:
        if seed is not None:
            raise ConfigError(f"Zoo model '{name}' is pretrained: --seed does not apply; leave it out.")
        entry.pretrained(framework, path)
        return Materialized(path, name, framework, "pretrained", time.perf_counter() - started)
    shipped = None if retrain else shipped_model(name, framework)
    card = read_card(shipped) if shipped else None
    if shipped is None or card is None or (seed is not None and seed != card.seed):
        trained = train_zoo_model(name, framework, path, seed)
        return Materialized(path, name, framework, "trained", trained.train_seconds, trained.test_accuracy)
    if shipped.resolve() != path.resolve():
        _copy(shipped, path)
        _copy(card_path(shipped), card_path(path))
    return Materialized(path, name, framework, "shipped", time.perf_counter() - started,
                        card.training.get("test_accuracy"))


if __name__ == "__main__":
    for file, entry in write_index().items():
        print(f"{file}: {entry['size_bytes']} bytes, sha256 {entry['sha256']}")
