"""The Vulkan device LiteRT's GPU accelerator runs on here, found by running it, and named by its adapter.

LiteRT's GPU accelerator (`libLiteRtWebGpuAccelerator.so`, WebGPU over Vulkan) opens `libvulkan.so.1` and
takes the adapter the Vulkan loader offers. Two stacks are tried, each in a child process that compiles and
runs a one-op model on the GPU: this process's own (a real GPU's driver), then the Vulkan loader and
SwiftShader driver Debian's `chromium` package ships in /usr/lib/chromium (a software GPU on the CPU).
The device label comes from the adapter the accelerator logs it selected, never from which files were found.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_DIR = Path("/usr/lib/chromium")
SWIFTSHADER_ICD = "vk_swiftshader_icd.json"
VULKAN_LOADER = "libvulkan.so.1"
PROBE_TIMEOUT_S = 120.0
# The accelerator logs the adapter it takes at INFO level; these variables would hide that line.
LOG_LEVEL_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel")
ADAPTER_LINE = re.compile(r"Selected adapter: (?P<name>.+?), arch=(?P<arch>[^,]*), vendor=(?P<vendor>[^,]*), "
                          r"backend=(?P<backend>[^,]*), adapterType=(?P<type>[^\n]+)")
SOFTWARE_DEVICES = {"swiftshader": "SwiftShader", "llvmpipe": "llvmpipe", "lavapipe": "lavapipe"}
FAILURE_HINTS = ("No adapters found", "cannot open shared object file", "VK_ERROR", "fully accelerated", "wrong sum")

PROBE_SCRIPT = """
import json, sys
import numpy as np
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.hardware_accelerator import HardwareAccelerator
model = CompiledModel.from_file(sys.argv[1], hardware_accel=HardwareAccelerator.GPU)
if not model.is_fully_accelerated():
    raise SystemExit("the GPU accelerator would not take the probe's ADD op (not fully accelerated)")
inputs, outputs = model.create_input_buffers(0), model.create_output_buffers(0)
inputs[0].write(np.arange(4, dtype=np.float32))
inputs[1].write(np.ones(4, dtype=np.float32))
model.run_by_index(0, inputs, outputs)
total = np.asarray(outputs[0].read(4, np.float32)).tolist()
if total != [1.0, 2.0, 3.0, 4.0]:
    raise SystemExit(f"the GPU returned a wrong sum {total} for [0, 1, 2, 3] + 1")
print(json.dumps({"ok": True}))
"""


COMPILE_SCRIPT = """
import sys
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.hardware_accelerator import HardwareAccelerator
CompiledModel.from_file(sys.argv[1], hardware_accel=HardwareAccelerator.GPU | HardwareAccelerator.CPU)
"""
UNSUPPORTED_START = "Following operations are not supported by GPU delegate:"
UNSUPPORTED_END = re.compile(r"(\d+) operations will run on the GPU, and the remaining (\d+) operations will run on the CPU")


@dataclass(frozen=True)
class GpuAdapter:
    """The adapter the accelerator selected, as it logged it."""

    name: str
    architecture: str
    vendor: str
    backend: str
    adapter_type: str

    @property
    def software(self) -> bool:
        return any(word in self.adapter_type.lower() for word in ("cpu", "software"))

    @property
    def label(self) -> str:
        """'software GPU (SwiftShader Vulkan)' for a software adapter, else the adapter's own name."""
        if not self.software:
            return self.name
        text = f"{self.name} {self.architecture}".lower()
        family = next((label for key, label in SOFTWARE_DEVICES.items() if key in text), self.name)
        return f"software GPU ({family} {self.backend})"

    def describe(self) -> str:
        return (f"{self.name}, arch={self.architecture}, vendor={self.vendor}, backend={self.backend}, "
                f"adapterType={self.adapter_type}")

    def to_json(self) -> dict[str, object]:
        return {"device_kind": self.label, "adapter": self.describe(), "software": self.software,
                "backend": self.backend}


@dataclass(frozen=True)
class GpuStack:
    """A Vulkan stack the accelerator ran on: where it comes from, the variables a process needs for it, its adapter."""

    source: str
    environment: dict[str, str] = field(default_factory=dict)
    adapter: GpuAdapter | None = None


@dataclass(frozen=True)
class GpuProbe:
    """The first stack that ran the probe model, or why none did."""

    stack: GpuStack | None
    reason: str = ""


def parse_adapter(log: str) -> GpuAdapter | None:
    """The adapter in the accelerator's 'Selected adapter: ...' log line, or None where it logged none."""
    match = ADAPTER_LINE.search(log)
    if match is None:
        return None
    return GpuAdapter(match["name"].strip(), match["arch"].strip(), match["vendor"].strip(), match["backend"].strip(),
                      match["type"].strip())


def probe_model() -> bytes:
    """A TFLite flatbuffer with one float32 ADD of two [1, 4] inputs: the smallest graph the accelerator compiles."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tensors = []
    for name in ("a", "b", "sum"):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name, [1, 4], schema.TensorType.FLOAT32, 0
        tensors.append(tensor)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.AddOptions, schema.AddOptionsT()
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0, 1], [2], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], [schema.BufferT()]
    builder = flatbuffers.Builder(512)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def candidate_stacks() -> tuple[list[GpuStack], list[str]]:
    """The stacks worth probing, in order, and why the others were left out."""
    stacks, notes = [], []
    if ctypes.util.find_library("vulkan"):
        stacks.append(GpuStack("system Vulkan loader"))
    else:
        notes.append(f"no Vulkan loader ({VULKAN_LOADER}) on the system")
    icd = CHROMIUM_DIR / SWIFTSHADER_ICD
    if icd.is_file() and (CHROMIUM_DIR / VULKAN_LOADER).is_file():
        stacks.append(GpuStack("SwiftShader in Debian's chromium package",
                               {"LD_LIBRARY_PATH": str(CHROMIUM_DIR), "VK_ICD_FILENAMES": str(icd)}))
    else:
        notes.append(f"no SwiftShader Vulkan driver ({icd} and {VULKAN_LOADER}; `apt-get install chromium`)")
    return stacks, notes


def _failure(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    hinted = [line for line in lines if any(hint in line for hint in FAILURE_HINTS)]
    return (hinted or lines or ["no output"])[-1][:300]


def run_probe(stack: GpuStack, model_path: Path) -> tuple[GpuAdapter | None, str]:
    """Run the probe model on `stack` in a child process: (the adapter it selected, '') or (None, why it failed)."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBE_SCRIPT, str(model_path)], capture_output=True, text=True,
                              env=child_environment(stack), timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"the probe did not finish in {PROBE_TIMEOUT_S:.0f} s"
    adapter = parse_adapter(done.stderr)
    if done.returncode != 0 or '"ok": true' not in done.stdout:
        return None, _failure(done.stderr)
    if adapter is None:
        return None, "the accelerator ran but logged no 'Selected adapter' line to name the device"
    return adapter, ""


@functools.cache
def find_gpu() -> GpuProbe:
    """The first Vulkan stack the GPU accelerator runs on here (probed once per process), or why there is none."""
    try:
        data = probe_model()
    except ImportError as exc:
        return GpuProbe(None, f"ai-edge-litert is not installed ({exc}); run `make setup`.")
    stacks, notes = candidate_stacks()
    with tempfile.TemporaryDirectory(prefix="gpu-probe-") as folder:
        model_path = Path(folder) / "probe.tflite"
        model_path.write_bytes(data)
        for stack in stacks:
            adapter, why = run_probe(stack, model_path)
            if adapter is not None:
                return GpuProbe(GpuStack(stack.source, stack.environment, adapter))
            notes.append(f"{stack.source}: {why}")
    return GpuProbe(None, "GPU delegate unavailable: LiteRT's GPU accelerator (WebGPU over Vulkan) found no device: "
                          + "; ".join(notes) + ".")


def child_environment(stack: GpuStack) -> dict[str, str]:
    """This process's environment with `stack`'s variables, and the accelerator's INFO log left on."""
    env = {key: value for key, value in os.environ.items() if key not in LOG_LEVEL_VARIABLES}
    for key, value in stack.environment.items():
        env[key] = os.pathsep.join(filter(None, (value, env.get(key)))) if key == "LD_LIBRARY_PATH" else value
    return env


def unsupported_ops(model_path: Path, stack: GpuStack) -> str:
    """Why the accelerator would not take all of `model_path`, as its compiler logs it ('GATHER_ND: Operation is not
    supported; 323 of 361 ops on the GPU'), from a child process compiling it with the CPU allowed; '' if it says none."""
    try:
        done = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT, str(model_path)], capture_output=True, text=True,
                              env=child_environment(stack), timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return ""
    lines = done.stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if UNSUPPORTED_START in line), None)
    if start is None:
        return ""
    ops, split = [], None
    for line in lines[start + 1:]:
        split = UNSUPPORTED_END.search(line)
        if split:
            break
        if line.strip():
            ops.append(line.strip().rstrip("."))
    if split is None:
        return "; ".join(ops)
    on_gpu, on_cpu = int(split[1]), int(split[2])
    return "; ".join(ops) + f"; {on_gpu} of {on_gpu + on_cpu} ops would run on the GPU"


def use_stack(stack: GpuStack) -> None:
    """Make this process open `stack`'s Vulkan loader and driver: the driver's manifest goes in the environment and
    the loader is loaded by path before the accelerator asks for it by name (LD_LIBRARY_PATH is read only when a
    process starts). A no-op for the system's stack or where the process already started with the variables."""
    icd = stack.environment.get("VK_ICD_FILENAMES")
    if icd:
        os.environ["VK_ICD_FILENAMES"] = icd
    folder = stack.environment.get("LD_LIBRARY_PATH")
    if folder:
        ctypes.CDLL(str(Path(folder) / VULKAN_LOADER), mode=ctypes.RTLD_GLOBAL)


def probe_json(probe: GpuProbe) -> str:
    """The probe's outcome as one JSON line (for logs and `python -m device_runtime.gpu`)."""
    stack = probe.stack
    if stack is None:
        return json.dumps({"available": False, "reason": probe.reason})
    return json.dumps({"available": True, "source": stack.source, "environment": stack.environment,
                       **(stack.adapter.to_json() if stack.adapter else {})})


if __name__ == "__main__":
    print(probe_json(find_gpu()))
