"""Which route expresses which quantization mode: one registered handler per (mode, route), torchao style.

A route is (source framework, target), e.g. ("keras", "tflite"). Each module of `exporters.routes`
registers a handler for every mode its route can express (the handler's signature is its target's:
see exporters.base); the exporter looks it up with `handler_for`, so a pair without one is an
UnsupportedRouteError listing what exists, never a quiet float export. `modes_for`, `routes_for` and
`target_modes` answer the CLI, the sweep planner and the demo from the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.core.errors import ConfigError, UnsupportedRouteError
from quantize.techniques import TECHNIQUES, technique_modes

Handler = Callable[..., Any]
Route = tuple[str, str]  # (source framework, target)


def route_name(framework: str, target: str) -> str:
    """'keras -> tflite'."""
    return f"{framework} -> {target}"


class RouteHandlers:
    """(mode, framework, target) -> handler, plus why a route refuses a mode (quoted by the error)."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str, str], Handler] = {}
        self._reasons: dict[tuple[str, str, str], str] = {}
        self._selective: set[tuple[str, str, str]] = set()

    def register(self, mode: str, framework: str, target: str, handler: Handler, *, keep_float: bool = False) -> Handler:
        """Register `handler` for `mode` on framework -> target and return it; `keep_float`: the handler honours
        the config's `keep_float` layers (selective quantization).

        Raises UnknownNameError for a mode that is not a registered technique, ConfigError for a pair
        that already has a handler.
        """
        TECHNIQUES.get(mode)
        key = (mode, framework, target)
        if key in self._handlers:
            raise ConfigError(f"Quantization '{mode}' already has a handler on the {route_name(framework, target)} route.")
        self._handlers[key] = handler
        if keep_float:
            self._selective.add(key)
        return handler

    def check_keep_float(self, quantization: Any, framework: str, target: str) -> None:
        """Raise UnsupportedRouteError when `quantization` keeps layers in float and framework -> target's handler
        cannot, naming the routes that can."""
        mode = quantization.mode
        if not getattr(quantization, "keep_float", ()) or (mode, framework, target) in self._selective:
            return
        able = sorted(route_name(f, t) for m, f, t in self._selective if m == mode)
        raise UnsupportedRouteError(
            f"--keep-float cannot be expressed for {mode} on the {route_name(framework, target)} route: its quantizer "
            "has no per-layer setting here. "
            + (f"Routes that keep layers in float for {mode}: {', '.join(able)}. " if able else "")
            + ("Drop --keep-float, or pick one of those routes." if able else "Drop --keep-float."))

    def keep_float_routes(self) -> tuple[tuple[str, str, str], ...]:
        """Every (mode, framework, target) whose handler honours `keep_float`, sorted."""
        return tuple(sorted(self._selective))

    def explain_refusal(self, mode: str, framework: str, target: str, reason: str) -> None:
        """Record why framework -> target cannot express `mode` (one clause; `handler_for`'s error quotes it)."""
        TECHNIQUES.get(mode)
        key = (mode, framework, target)
        if key in self._reasons:
            raise ConfigError(f"The {route_name(framework, target)} route already explains why it refuses '{mode}'.")
        self._reasons[key] = reason

    def handler_for(self, mode: str, framework: str, target: str) -> Handler:
        """The handler of `mode` on framework -> target.

        Raises UnknownNameError for an unknown mode, UnsupportedRouteError (naming the modes this route
        can express and the routes that can express this mode) for an unregistered pair.
        """
        TECHNIQUES.get(mode)
        handler = self._handlers.get((mode, framework, target))
        if handler is None:
            raise UnsupportedRouteError(self._refusal(mode, framework, target))
        return handler

    def modes_for(self, framework: str, target: str) -> tuple[str, ...]:
        """The modes framework -> target can express, in technique order; () if there is no such route."""
        return tuple(mode for mode in technique_modes() if (mode, framework, target) in self._handlers)

    def target_modes(self, target: str) -> tuple[str, ...]:
        """The modes some route to `target` can express, in technique order."""
        return tuple(mode for mode in technique_modes() if any(m == mode and t == target for m, _, t in self._handlers))

    def routes_for(self, mode: str) -> tuple[Route, ...]:
        """The (framework, target) routes that can express `mode`, sorted."""
        return tuple(sorted((framework, target) for m, framework, target in self._handlers if m == mode))

    def routes(self) -> tuple[Route, ...]:
        """Every route with at least one handler, sorted."""
        return tuple(sorted({(framework, target) for _, framework, target in self._handlers}))

    def pairs(self) -> tuple[tuple[str, str, str], ...]:
        """Every registered (mode, framework, target), by route then technique order."""
        order = {mode: i for i, mode in enumerate(technique_modes())}
        return tuple(sorted(self._handlers, key=lambda key: (key[1], key[2], order[key[0]])))

    def _refusal(self, mode: str, framework: str, target: str) -> str:
        reason = self._reasons.get((mode, framework, target))
        text = f"Quantization '{mode}' cannot be expressed for target {target} from a {framework} model"
        text += f": {reason}." if reason else "."
        modes = self.modes_for(framework, target)
        text += f" Options: {', '.join(modes)}." if modes else f" There is no {route_name(framework, target)} route."
        elsewhere = self.routes_for(mode)
        if elsewhere:
            text += f" Routes that express {mode}: {', '.join(route_name(*route) for route in elsewhere)}."
        fix = [*(["one of the options"] if modes else []), *(["one of those routes"] if elsewhere else [])]
        return f"{text} Pick {', or '.join(fix) or 'another route'} (`pipeline routes` lists every route and its modes)."


ROUTE_HANDLERS = RouteHandlers()
register_handler = ROUTE_HANDLERS.register
explain_refusal = ROUTE_HANDLERS.explain_refusal
handler_for = ROUTE_HANDLERS.handler_for
modes_for = ROUTE_HANDLERS.modes_for
target_modes = ROUTE_HANDLERS.target_modes
routes_for = ROUTE_HANDLERS.routes_for
check_keep_float_route = ROUTE_HANDLERS.check_keep_float
