"""What `pipeline optimize` tries: candidates (a technique on a target), cheapest first, and the rules that grow
or cut the search from the verdicts so far."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.sweep.plan import content_key
from pipeline.sweep.recipe import VariantSpec

# post-training modes, cheapest (least lossy) first; a target tries those its route expresses
POST_TRAINING = ("none", "fp16", "uint16", "uint8", "weight-int8", "dynamic-int8", "int8")
PRUNE_LEVELS = (0.25, 0.5)  # channel pruning ratios, tried in order on top of the best candidate so far
SELECTIVE_LAYERS = (1, 2, 4, 8)  # layers kept in float, tried in order until the budget holds
OBJECTIVES = ("size", "latency")


@dataclass(frozen=True)
class Candidate:
    """One technique on one target: a quantization mode, optionally after channel pruning, per tensor, or with
    some layers kept in float."""

    target: str
    quantize: str
    prune: str | None = None
    per_channel: bool = True
    keep_float: tuple[str, ...] = ()
    why: str = field(default="", compare=False)  # the rule that proposed it

    @property
    def name(self) -> str:
        """The variant name: 'int8', 'int8-per-tensor', 'int8-keep2-1a2b3c', 'channels0.25+int8'."""
        name = "fp32" if self.quantize == "none" else self.quantize
        if not self.per_channel:
            name += "-per-tensor"
        if self.keep_float:
            name += f"-keep{len(self.keep_float)}-{content_key(list(self.keep_float))[:6]}"
        return f"{self.prune.replace(':', '')}+{name}" if self.prune else name

    @property
    def key(self) -> str:
        return f"{self.target}/{self.name}"

    def variant(self) -> VariantSpec:
        return VariantSpec(name=self.name, quantize=self.quantize, prune=self.prune, per_channel=self.per_channel,
                           keep_float=self.keep_float)

    def label(self) -> str:
        text = self.quantize if self.quantize != "none" else "fp32"
        if not self.per_channel:
            text += " per-tensor"
        if self.keep_float:
            text += f" keeping {', '.join(self.keep_float)} in float"
        return f"{self.target} {('pruned ' + self.prune + ' + ') if self.prune else ''}{text}"


@dataclass(frozen=True)
class Verdict:
    """What one candidate turned out to be (read from its manifest and, for latency, its measurement)."""

    candidate: Candidate
    status: str  # ok | failed | skipped
    within_budget: bool = False
    drop_points: float | None = None
    drop_measure: str = ""
    size_bytes: int | None = None
    p50_ms: float | None = None
    artifact_dir: str = ""
    reason: str = ""  # why it failed or was skipped
    round: int = 0

    def objective(self, objective: str) -> float | None:
        return self.size_bytes if objective == "size" else self.p50_ms

    def to_json(self) -> dict[str, Any]:
        c = self.candidate
        return {"key": c.key, "name": c.name, "label": c.label(), "target": c.target, "quantize": c.quantize,
                "prune": c.prune, "per_channel": c.per_channel, "keep_float": list(c.keep_float), "why": c.why,
                "status": self.status, "within_budget": self.within_budget, "drop_points": self.drop_points,
                "drop_measure": self.drop_measure, "size_bytes": self.size_bytes, "p50_ms": self.p50_ms,
                "artifact_dir": self.artifact_dir, "reason": self.reason, "round": self.round}


def first_round(targets: Iterable[str], modes_for: Callable[[str], tuple[str, ...]]) -> list[Candidate]:
    """Every post-training mode each target's route expresses (float first: it is the size and speed reference)."""
    return [Candidate(target, mode, why="post-training") for target in targets for mode in POST_TRAINING
            if mode in modes_for(target)]


@dataclass
class Rules:
    """The follow-ups of one target's verdicts: what to try next, and what not to try (with the reason)."""

    objective: str
    modes: tuple[str, ...]  # the modes the target's route expresses
    selective: str  # '' when the route can keep layers in float and rank them; else why not
    prunable: str = ""  # '' when the model's framework has channel pruning; else why not
    next: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[Candidate, str]] = field(default_factory=list)

    def follow_ups(self, verdicts: dict[str, Verdict], target: str,
                   worst_layers: Callable[[Verdict, int], tuple[str, ...]]) -> None:
        """Fill `next` and `skipped` from the target's verdicts so far (calling it again proposes nothing twice)."""
        mine = {v.candidate.key: v for v in verdicts.values() if v.candidate.target == target}
        int8 = mine.get(Candidate(target, "int8").key)
        if int8 is not None and int8.status != "skipped":
            self._after_int8(target, int8, mine, worst_layers)
        if not self.next:  # the quantization branches have settled: prune their best
            self._pruning(target, mine)

    def _propose(self, candidate: Candidate, seen: dict[str, Verdict]) -> None:
        if candidate.key not in seen and candidate not in self.next:
            self.next.append(candidate)

    def _skip(self, candidate: Candidate, reason: str, seen: dict[str, Verdict]) -> None:
        if candidate.key not in seen and all(c.key != candidate.key for c, _ in self.skipped):
            self.skipped.append((replace(candidate, why=""), reason))

    def _after_int8(self, target: str, int8: Verdict, mine: dict[str, Verdict],
                    worst_layers: Callable[[Verdict, int], tuple[str, ...]]) -> None:
        # per-tensor scales: simpler kernels, and smaller files where per-channel scales weigh (a small model's
        # depthwise convolutions: MobileNet .pte 114 KB per tensor against 141 KB per channel)
        per_tensor = Candidate(target, "int8", per_channel=False, why="int8 holds the budget: one scale per tensor")
        qat = Candidate(target, "qat-int8", why="int8 misses the budget: learn the ranges")
        if int8.within_budget:
            self._propose(per_tensor, mine)
            if "qat-int8" in self.modes:
                self._skip(qat, "int8 already holds the budget, and QAT int8 has its size and speed", mine)
            return
        self._skip(per_tensor, "int8 per channel misses the budget; one scale per tensor loses more", mine)
        if "qat-int8" in self.modes:
            self._propose(qat, mine)
        if self.selective:
            self._skip(Candidate(target, "int8", keep_float=("auto",)), f"selective int8: {self.selective}", mine)
            return
        if int8.status != "ok" and int8.drop_points is None:
            return  # int8 did not export at all: nothing to rank
        tried: tuple[str, ...] = ()
        for count in SELECTIVE_LAYERS:
            names = worst_layers(int8, count)
            if not names or names == tried:
                return  # nothing ranked, or every ranked layer is already float
            tried = names
            candidate = Candidate(target, "int8", keep_float=names,
                                  why=f"int8 misses the budget: keep its {count} noisiest layer(s) in float")
            verdict = mine.get(candidate.key)
            if verdict is None:
                self._propose(candidate, mine)
                return
            if verdict.within_budget:
                return  # the fewest float layers that hold the budget

    def _pruning(self, target: str, mine: dict[str, Verdict]) -> None:
        """Channel pruning on top of the best candidate so far, a level at a time, stopping at the first miss."""
        done = [v for v in mine.values() if v.status == "ok" and v.within_budget and not v.candidate.prune
                and v.objective(self.objective) is not None]
        if not done:
            return
        best = min(done, key=lambda v: v.objective(self.objective)).candidate
        if self.prunable:
            self._skip(Candidate(target, best.quantize, prune=f"channels:{PRUNE_LEVELS[0]}"), self.prunable, mine)
            return
        for ratio in PRUNE_LEVELS:
            candidate = Candidate(target, best.quantize, prune=f"channels:{ratio}", per_channel=best.per_channel,
                                  keep_float=best.keep_float, why=f"prune {ratio:.0%} of the channels of the best so far")
            verdict = mine.get(candidate.key)
            if verdict is None:
                self._propose(candidate, mine)
                break
            if not verdict.within_budget:
                break
        self._skip(Candidate(target, best.quantize, prune="0.5"),
                   "magnitude pruning leaves dense tensors: the same file size and dense-kernel speed, less accuracy",
                   mine)
