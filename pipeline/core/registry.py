"""A small name -> object registry shared by exporters, stages, runtimes and the zoo."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from pipeline.core.errors import ConfigError, UnknownNameError

T = TypeVar("T")


def did_you_mean(name: str, options: list[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest option, or '' if none is close."""
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name_message(kind: str, name: str, options: list[str]) -> str:
    """The one wording used for every unknown name: value, options, closest match."""
    listed = ", ".join(sorted(options)) or "(none)"
    return f"Unknown {kind} '{name}'. Available: {listed}.{did_you_mean(name, options)}"


class Registry(Generic[T]):
    """Maps names to objects; refuses duplicates and explains unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add `item` under `name`; raises ConfigError if the name is taken."""
        if name in self._items:
            raise ConfigError(f"{self.kind} '{name}' is already registered.")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """Return the item named `name`; raises UnknownNameError listing the options."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def in_order(self) -> list[str]:
        """Names in the order they were registered (defaults and colours follow it)."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._items[name]) for name in self.names()]
