"""Model cards: a JSON file beside a model saying what data and task it belongs to."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import IntakeError
from pipeline.core.files import write_json_atomic

CARD_SUFFIX = ".card.json"
CARD_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ModelCard:
    """What the pipeline needs to know about a model beyond its weights."""

    name: str
    dataset: str
    input_layout: str
    labels: tuple[str, ...]
    task: str = "classification"
    seed: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    schema_version: int = CARD_SCHEMA_VERSION


def card_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + CARD_SUFFIX)


def write_card(model_path: Path, card: ModelCard) -> Path:
    """Write the card beside `model_path`; returns the card's path."""
    path = card_path(model_path)
    write_json_atomic(path, asdict(card))
    return path


def read_card(model_path: Path) -> ModelCard | None:
    """The card beside `model_path`, or None when there is none."""
    path = card_path(model_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        data["labels"] = tuple(data.get("labels", ()))
        return ModelCard(**data)
    except (ValueError, TypeError) as exc:
        raise IntakeError(
            f"Model card {path} is not valid ({exc}). Delete it, or re-create it with "
            "`pipeline train`; without a card, pass --eval-data and --calibration."
        ) from None
