"""`pipeline optimize`: the smallest or fastest artifact of a model for a device within an accuracy budget.

The search runs in rounds. Each round exports its candidates through the sweep (same cache, executors, store
and locks, so Ray works and a killed run resumes from what it finished), reads every verdict from the
manifests, measures only the candidates within budget when the objective is latency, and asks the rules
(`candidates.Rules`) what to try next. Every verdict is saved after each round in WORKSPACE/optimize/.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError, PipelineError
from pipeline.core.files import write_json_atomic
from pipeline.optimize.candidates import OBJECTIVES, Candidate, Rules, Verdict, first_round
from pipeline.optimize.quality import quality_drop
from pipeline.sweep.recipe import MeasureSpec, ModelSpec, Recipe, RuntimeSpec

SEARCH_SCHEMA_VERSION = 1
MAX_ROUNDS = 8
# the runtime each target is measured on for the latency objective (its CPU path on every profile)
TARGET_RUNTIMES = {"tflite": ("litert", "xnnpack"), "executorch": ("executorch", "xnnpack"),
                   "onnx": ("onnxruntime", "cpu"), "tfjs": ("tfjs-node", "wasm")}
MEASURE = MeasureSpec(warmup_runs=5, min_runs=20, min_duration_s=1.0, timeout_s=300.0)


@dataclass(frozen=True)
class OptimizeRequest:
    """What to optimize: a recipe model (zoo or file), the device, the budget in points and the objective."""

    model: ModelSpec
    device: str
    max_drop_points: float
    objective: str
    targets: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"Unknown objective '{self.objective}'. Options: {', '.join(OBJECTIVES)}.")
        if not (isinstance(self.max_drop_points, (int, float)) and 0 <= self.max_drop_points <= 100):
            raise ConfigError(f"--max-accuracy-drop must be between 0 and 100 points, got {self.max_drop_points!r} "
                              "(1 = one accuracy point, or a cosine of 0.99 for an embedding).")

    @property
    def slug(self) -> str:
        """The file name of this search's state: model, device, objective and budget."""
        model = f"{self.model.name}-{self.model.framework or 'user'}"
        return f"{model}-{self.device}-{self.objective}-{self.max_drop_points:g}pts"

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model.name, "framework": self.model.framework, "path": self.model.path,
                "device": self.device, "max_drop_points": self.max_drop_points, "objective": self.objective,
                "targets": list(self.targets)}


def state_path(workspace: Path, request: OptimizeRequest) -> Path:
    return workspace / "optimize" / f"{request.slug}.json"


class Search:
    """One optimize run: its verdicts, the sweep it runs rounds through, and the state file it keeps."""

    measure_all = False  # latency: measure every candidate that exported, not only those within budget

    def __init__(self, request: OptimizeRequest, workspace: Path, store: Path, executor: Any,
                 out: Callable[[str], None] = print, cell_out: Callable[[str], None] | None = None) -> None:
        self.request, self.workspace, self.store, self.executor = request, workspace, store, executor
        self.out, self.cell_out = out, cell_out or (lambda line: None)
        self.verdicts: dict[str, Verdict] = {}
        self.skipped: dict[str, Verdict] = {}
        self.started = time.perf_counter()
        self.rounds: list[dict[str, Any]] = []
        self._sha256: str | None = None

    # --- the loop -------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from exporters import modes_for

        request = self.request
        framework = request.model.framework or "user"
        candidates = first_round(request.targets, lambda target: modes_for(framework, target))
        rules = {t: Rules(request.objective, modes_for(framework, t), self._selective_refusal(framework, t),
                          prunable_refusal(framework)) for t in request.targets}
        for number in range(1, MAX_ROUNDS + 1):
            if not candidates:
                break
            self.out(f"round {number}: {len(candidates)} candidate(s): "
                     + ", ".join(c.label() for c in candidates))
            self.evaluate(number, candidates)
            if number == 1:
                self._check_float_exports()
            candidates = []
            for target, rule in rules.items():
                rule.next, rule.skipped = [], []
                rule.follow_ups(self.verdicts, target, self._worst_layers)
                candidates += rule.next
                for candidate, reason in rule.skipped:
                    self.skipped.setdefault(candidate.key, Verdict(candidate, "skipped", reason=reason, round=number))
            self._save(done=not candidates)
        return self.result()

    def evaluate(self, number: int, candidates: list[Candidate]) -> None:
        """Export `candidates` (round `number`), judge them, and measure those within budget for latency."""
        from pipeline.sweep.runner import run_sweep

        started = time.perf_counter()
        summary = run_sweep(self._recipe(candidates, measure=False), self.workspace, self.store, self.executor,
                            out=self.cell_out)
        for candidate in candidates:
            self.verdicts[candidate.key] = self._verdict(candidate, number)
        within = [c for c in candidates if self.verdicts[c.key].within_budget or
                  (self.measure_all and self.verdicts[c.key].artifact_dir)]
        if self.request.objective == "latency" and within:
            run_sweep(self._recipe(within, measure=True), self.workspace, self.store, self.executor,
                      out=self.cell_out)
            for candidate in within:
                self.verdicts[candidate.key] = self._measured(self.verdicts[candidate.key])
        for candidate in candidates:
            self.out("  " + describe(self.verdicts[candidate.key], self.request))
        self.rounds.append({"round": number, "candidates": [c.key for c in candidates],
                            "seconds": round(time.perf_counter() - started, 1),
                            "exports": dict(summary.exports)})

    def _check_float_exports(self) -> None:
        """Raise ExportError when no target's float export worked: the model itself is the problem (an unreadable
        file, missing data), and every other candidate failed for the same reason."""
        from pipeline.core.errors import ExportError

        floats = [v for v in self.verdicts.values() if v.candidate.quantize == "none"]
        if floats and all(v.status != "ok" for v in floats):
            self._save(done=True)
            reasons = "; ".join(f"{v.candidate.target}: {v.reason}" for v in floats)
            raise ExportError(f"The float export of {self.request.model.path or self.request.model.name} failed on "
                              f"every target, so there is nothing to optimize: {reasons}. Fix the model (try "
                              "`pipeline export MODEL --target tflite`), then run optimize again.")

    # --- the sweep behind it --------------------------------------------------------------------------------

    def _recipe(self, candidates: list[Candidate], measure: bool) -> Recipe:
        """One recipe model per target (limited to that target's candidates), so a variant name means the same
        cell key in every round and in `pipeline sweep`."""
        targets = tuple(dict.fromkeys(c.target for c in candidates))
        models = tuple(replace(self.request.model, targets=(t,), devices=(self.request.device,),
                               variants=tuple(c.name for c in candidates if c.target == t)) for t in targets)
        variants = tuple({c.name: c.variant() for c in candidates}.values())
        runtimes = tuple(RuntimeSpec(t, *TARGET_RUNTIMES[t]) for t in targets if t in TARGET_RUNTIMES) if measure else ()
        return Recipe(name=f"optimize {self.request.slug}", models=models, variants=variants, targets=targets,
                      runtimes=runtimes, devices=(self.request.device,), measure=MEASURE)

    def _source_sha256(self) -> str:
        """The source model's hash, read once per search (a cell key needs it; MiniLM's file is 90 MB)."""
        from pipeline.core.files import sha256_path
        from pipeline.sweep.runner import model_reference

        if self._sha256 is None:
            self._sha256 = sha256_path(Path(model_reference(self.request.model, self.workspace)))
        return self._sha256

    def _export_row(self, candidate: Candidate) -> dict[str, Any] | None:
        from pipeline.results import open_store
        from pipeline.sweep.plan import ExportCell

        model = replace(self.request.model, targets=(candidate.target,), variants=(candidate.name,))
        key = ExportCell(model, candidate.variant(), candidate.target).key(self._source_sha256())
        with open_store(self.store) as store:
            row = store.execute("SELECT * FROM exports WHERE key = ?", (key,)).fetchone()
        return dict(row) if row else None

    def _verdict(self, candidate: Candidate, number: int) -> Verdict:
        from pipeline.core.manifest import MANIFEST_FILE, read_manifest

        row = self._export_row(candidate)
        if row is None:
            return Verdict(candidate, "failed", reason="the export did not run (see the sweep's output)", round=number)
        folder = Path(row["artifact_dir"])
        if not (folder / MANIFEST_FILE).is_file():
            return Verdict(candidate, "failed", reason=row.get("error") or "no artifact", artifact_dir=str(folder),
                           round=number)
        manifest = read_manifest(folder)
        drop, measure = quality_drop(manifest)
        passed = manifest["validation"].get("passed") is not False
        within = passed and math.isfinite(drop) and drop <= self.request.max_drop_points
        reason = "" if passed else "validation failed: " + "; ".join(manifest["validation"].get("failures", []))
        if passed and not within:
            reason = f"loses {drop:.2f} points ({measure}), over the {self.request.max_drop_points:g}-point budget"
        return Verdict(candidate, "ok" if passed else "failed", within, drop if math.isfinite(drop) else None, measure,
                       int(manifest["size_bytes"]), None, str(folder), reason, number)

    def _measured(self, verdict: Verdict) -> Verdict:
        from pipeline.results import fetch_measurements, open_store

        runtime = TARGET_RUNTIMES.get(verdict.candidate.target)
        with open_store(self.store) as store:
            rows = [r for r in fetch_measurements(store, artifact_dir=verdict.artifact_dir,
                                                  device_profile=self.request.device)
                    if runtime and (r["runtime"], r["delegate_requested"]) == runtime]
        ok = next((r for r in rows if r["status"] == "ok"), None)
        if ok is None:
            error = rows[0]["error"] if rows else "not measured"
            return replace(verdict, within_budget=False, reason=f"benchmark on {self.request.device}: {error}")
        return replace(verdict, p50_ms=float(ok["latency_ms_p50"]))

    # --- selective quantization -----------------------------------------------------------------------------

    def _selective_refusal(self, framework: str, target: str) -> str:
        from exporters import EXPORTERS
        from pipeline.export import ranking_refusal
        from quantize import ROUTE_HANDLERS

        if ("int8", framework, target) not in ROUTE_HANDLERS.keep_float_routes():
            return f"the {framework} -> {target} route cannot keep layers in float"
        if target not in EXPORTERS.names():
            return f"unknown target {target}"
        if target == "executorch" and framework != "torch":
            return "the layer ranking of a .pte follows PyTorch modules; this model reaches ExecuTorch through a bridge"
        return ranking_refusal(target, "int8")

    def _worst_layers(self, verdict: Verdict, count: int) -> tuple[str, ...]:
        from pipeline.selective import ranking_of, worst_layers

        try:
            return worst_layers(ranking_of(Path(verdict.artifact_dir)), count)
        except PipelineError as exc:
            self.out(f"  no layer ranking for {verdict.candidate.label()}: {exc}")
            return ()

    # --- the answer ----------------------------------------------------------------------------------------

    def result(self) -> dict[str, Any]:
        from pipeline.optimize.front import pareto, pick

        verdicts = list(self.verdicts.values())
        chosen = pick(verdicts, self.request.objective)
        return {"schema_version": SEARCH_SCHEMA_VERSION, "request": self.request.to_json(),
                "seconds": round(time.perf_counter() - self.started, 1), "rounds": self.rounds,
                "candidates": [v.to_json() for v in verdicts],
                "skipped": [v.to_json() for v in self.skipped.values()],
                "front": [v.candidate.key for v in pareto(verdicts, self.request.objective)],
                "pick": chosen.to_json() if chosen else None}

    def _save(self, done: bool) -> dict[str, Any]:
        result = {**self.result(), "done": done}
        write_json_atomic(state_path(self.workspace, self.request), result)
        return result


def prunable_refusal(framework: str) -> str:
    """'' when channel pruning takes a `framework` model; else why not (the stage's own words)."""
    from quantize.stages import STAGES

    return STAGES.get("prune-channels").refusal("prune-channels", framework)


def describe(verdict: Verdict, request: OptimizeRequest) -> str:
    """One line per verdict: the candidate, its size, speed and loss, and whether it holds the budget."""
    size = f"{verdict.size_bytes / 1e6:.3f} MB" if verdict.size_bytes is not None else "-"
    speed = f", p50 {verdict.p50_ms:.3g} ms" if verdict.p50_ms is not None else ""
    drop = f", loses {verdict.drop_points:.2f} pts" if verdict.drop_points is not None else ""
    state = "within budget" if verdict.within_budget else (verdict.reason or verdict.status)
    return f"{verdict.candidate.label()}: {size}{speed}{drop}: {state}"


def optimize(request: OptimizeRequest, workspace: Path, store: Path, executor: Any,
             out: Callable[[str], None] = print, cell_out: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the search (resuming from whatever the sweep cache already holds); saves its result with report.md and
    report.html (in WORKSPACE/optimize/SLUG/) and returns it, the report's paths under 'report'."""
    from pipeline.optimize.report import write_optimize_report

    search = Search(request, workspace, store, executor, out, cell_out)
    search.run()
    result = search._save(done=True)
    paths = write_optimize_report(result, state_path(workspace, request).with_suffix(""))
    return {**result, "report": [str(path) for path in paths]}
