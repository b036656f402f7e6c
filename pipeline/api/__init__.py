"""The Python API: `from pipeline import export, bench, sweep, optimize, results, routes, zoo, devices, Artifact`.

Every function raises the CLI's error hierarchy (`pipeline.core.errors.PipelineError` and its subclasses)
for input the caller can fix, and never exits the interpreter.
"""

from pipeline.core.console import quiet_frameworks

# before any framework is imported, their log levels as the CLI sets them (a caller's own settings win)
quiet_frameworks()

from pipeline.api.artifact import Artifact  # noqa: E402
from pipeline.api.exporting import export  # noqa: E402
from pipeline.api.measuring import bench, sweep  # noqa: E402
from pipeline.api.optimizing import optimize  # noqa: E402
from pipeline.api.tables import devices, results, routes, zoo  # noqa: E402

__all__ = ["Artifact", "bench", "devices", "export", "optimize", "results", "routes", "sweep", "zoo"]
