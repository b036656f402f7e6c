"""Does `pipeline train` reproduce the zoo's shipped weights? Retrains each model with its card's seed and compares.

Run: .venv/bin/python benchmarks/zoo_reproduce.py [--models NAME ...] [--frameworks keras torch]
Prints, per model and framework, the shipped and retrained test accuracy (from the cards), the top-1
agreement of the two models on the test split and the training time. Reproduced means: accuracy within
1 point and agreement >= 97% (the digits-cnn check in tests/zoo runs the same comparison; the MobileNet
takes minutes per framework, so it lives here).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    from pipeline.zoo import ZOO

    trained = [name for name, entry in ZOO.items() if entry.pretrained is None]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet-v2-shapes"], choices=trained)
    parser.add_argument("--frameworks", nargs="+", default=["keras", "torch"], choices=["keras", "torch"])
    args = parser.parse_args()

    from pipeline.zoo.reproduce import reproduce
    from pipeline.zoo.train import MODEL_SUFFIX

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            for framework in [f for f in args.frameworks if f in ZOO.get(name).builders]:
                with contextlib.redirect_stdout(sys.stderr):
                    result = reproduce(name, framework, Path(scratch) / f"{name}-{framework}{MODEL_SUFFIX[framework]}")
                print(result.describe(), flush=True)
                results.append(result)
    sys.exit(0 if all(r.matches() for r in results) else 1)


if __name__ == "__main__":
    main()
