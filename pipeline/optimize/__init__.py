"""`pipeline optimize`: search techniques over targets for the smallest or fastest artifact within a budget."""

from pipeline.optimize.candidates import OBJECTIVES, Candidate, Verdict
from pipeline.optimize.request import model_spec, targets_for
from pipeline.optimize.search import OptimizeRequest, optimize, state_path

__all__ = ["OBJECTIVES", "Candidate", "OptimizeRequest", "Verdict", "model_spec", "optimize", "state_path",
           "targets_for"]
