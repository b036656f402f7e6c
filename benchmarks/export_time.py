"""Export time per quantization mode and source framework for the digits-cnn reference model.

Run: .venv/bin/python benchmarks/export_time.py [--repeats N] [--workspace DIR]
Times conversion alone (`export_seconds` in the manifest) and the whole export including
validation in LiteRT, with both frameworks already imported (warm process).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workspace", default="workspace")
    args = parser.parse_args()

    import contextlib
    import sys

    from exporters import modes_for
    from pipeline.core.table import format_table
    from pipeline.demo import ensure_trained
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from quantize import quantization_config

    rows = []
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(sys.stderr):
        for framework in ("keras", "torch"):
            bundle = load_model(str(ensure_trained("digits-cnn", framework, Path(args.workspace) / "models", False)))
            export_bundle(bundle, "tflite", quantization_config("none"), Path(scratch) / "warmup")
            for mode in modes_for(framework, "tflite"):
                convert, total = [], []
                for repeat in range(args.repeats):
                    started = time.perf_counter()
                    result = export_bundle(bundle, "tflite", quantization_config(mode), Path(scratch) / f"{framework}-{mode}-{repeat}")
                    total.append(time.perf_counter() - started)
                    convert.append(result.manifest["export_seconds"])
                rows.append((framework, mode, round(statistics.median(convert), 3), round(statistics.median(total), 3),
                             result.manifest["size_bytes"]))
    print(f"digits-cnn -> tflite, median of {args.repeats} exports per row (warm process)")
    print(format_table(["framework", "quantize", "convert s", "convert+validate s", "bytes"], rows))


if __name__ == "__main__":
    main()
