"""Import Keras-2-era libraries without switching this process's `tf.keras` to Keras 2."""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def import_keeping_keras3(module_name: str, *also: str) -> ModuleType:
    """Import `module_name` (e.g. TFMOT, onnx2tf), undoing the TF_USE_LEGACY_KERAS=1 it sets at import.

    Such libraries set the variable and then touch `tf.keras`, which would bind `tf.keras` to
    tf_keras for the whole process (and, through the environment, its subprocesses). Binding
    `tf.keras` first keeps it on Keras 3; the library still uses tf_keras itself.
    """
    import tensorflow as tf

    previous = os.environ.get("TF_USE_LEGACY_KERAS")
    hasattr(tf.keras, "version")  # binds the lazy `tf.keras` (to Keras 3) before the switch flips
    try:
        for name in also:  # submodules a library imports lazily, which flip the switch when they load
            importlib.import_module(name)
        return importlib.import_module(module_name)
    finally:
        if previous is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = previous
