"""`pipeline debug`: rank an artifact's layers by their quantization error against a float export of its source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from device_runtime.device_scripts.edge_bench import read_feed
from pipeline.core.errors import ArtifactError, ConfigError, UnsupportedRouteError
from pipeline.core.files import write_json_atomic
from pipeline.core.manifest import read_manifest
from pipeline.core.table import format_table
from pipeline.core.tensors import TensorSpec
from pipeline.export import EVAL_FILE, rank_layers, ranking_refusal
from pipeline.layer_errors import DEBUG_FILE, DEBUG_SAMPLES
from quantize import quantization_config


def debug_artifact(artifact_dir: Path, samples: int = DEBUG_SAMPLES) -> dict[str, Any]:
    """Rank the artifact's layers against its float source on its eval.npz (a .tflite against an fp32 .tflite export
    of the manifest's source; a PyTorch int8 / dynamic-int8 .pte per module, its program rebuilt on portable
    kernels: see pipeline.layer_errors_executorch); the ranking is written to ARTIFACT_DIR/debug.json and returned.

    Raises ConfigError for a float artifact or samples < 1, UnsupportedRouteError for an artifact no ranking
    covers (see pipeline.export.ranking_refusal), ArtifactError when eval.npz is missing, IntakeError when the
    source model cannot be opened.
    """
    from pipeline.intake import load_model

    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}.")
    manifest = read_manifest(artifact_dir)
    stage = next((s["config"] for s in manifest.get("stages", []) if s.get("name") == "quantize"), {"mode": "none"})
    mode, target = stage["mode"], manifest["target"]
    why = ranking_refusal(target, mode, manifest["source"].get("framework", ""))
    if mode == "none":
        raise ConfigError(f"{artifact_dir}: {why}. Debug a quantized export (--quantize int8, "
                          "fp16, dynamic-int8, ...).")
    if why:
        raise UnsupportedRouteError(f"{artifact_dir}: {why}. Export the model with --target tflite --quantize {mode} "
                                    "and debug that.")
    data = artifact_dir / EVAL_FILE
    if not data.is_file():
        raise ArtifactError(f"{data} is missing, so there is nothing to run; re-export the artifact with evaluation "
                            "data (--eval-data FILE.npz).")
    order = [spec["name"] for spec in manifest.get("input_signature") or []]
    feed, _ = read_feed(data, order)
    specs = tuple(TensorSpec.from_json(spec) for spec in manifest.get("input_signature") or [])
    bundle = load_model(manifest["source"]["path"], input_specs=specs or None)
    options = {key: value for key, value in stage.items() if key != "mode"}  # keep_float, calibration samples, ...
    result = rank_layers(bundle, target, artifact_dir / manifest["model_file"], quantization_config(mode, **options),
                         feed, samples)
    notes = list(result.get("notes", []))
    if bundle.source.sha256 != manifest["source"].get("sha256"):
        notes.append("the source file changed since the export; the reference is today's file")
    if any(s.get("name") != "quantize" for s in manifest.get("stages", [])):
        notes.append("the reference is the source without the export's other stages (pruning, ...), so their error "
                     "counts in the ranking too" if target != "executorch" else "the program is rebuilt from the "
                     "source without the export's other stages (pruning, ...): the ranking covers quantization only")
    result = {**result, "artifact": str(artifact_dir), "quantize": mode, **({"notes": notes} if notes else {})}
    write_json_atomic(artifact_dir / DEBUG_FILE, result)
    return result


def format_ranking(result: dict[str, Any], top: int = 20) -> str:
    """The ranking as a table, worst SQNR first, with what was matched and how the shares were estimated."""
    rows = [(i + 1, layer["layer"], layer["op"], "x".join(str(d) for d in layer["shape"]), f"{layer['sqnr_db']:.1f}",
             f"{layer['relative_l2']:.4f}", f"{layer['share']:.0%}", layer["match"])
            for i, layer in enumerate(result["layers"][:top])]
    tensors = result["tensors"]
    lines = [format_table(["#", "layer", "op", "shape", "SQNR dB", "rel. L2", "share", "matched by"], rows),
             f"{result['matched']} of {tensors['quantized']} quantized-model tensors matched to the float model's "
             f"{tensors['reference']} ({', '.join(f'{n} by {rule}' for rule, n in result['match_rules'].items())}); "
             f"{result['samples']} samples.",
             *(f"output {o['tensor']}: SQNR {o['sqnr_db']:.1f} dB, relative L2 {o['relative_l2']:.4f}"
               for o in result["outputs"]),
             f"share: {result['share_method']}", *(f"note: {note}" for note in result.get("notes", []))]
    if len(result["layers"]) > top:
        lines.insert(1, f"... {len(result['layers']) - top} more layers in {DEBUG_FILE}")
    return "\n".join(lines)
