"""The Pareto front of an optimize run (objective vs points lost) and its pick."""

from __future__ import annotations

from pipeline.optimize.candidates import Verdict


def _scored(verdicts: list[Verdict], objective: str) -> list[Verdict]:
    return [v for v in verdicts if v.status == "ok" and v.drop_points is not None and v.objective(objective) is not None]


def pareto(verdicts: list[Verdict], objective: str) -> list[Verdict]:
    """The validated candidates no other beats on both the objective (size or p50) and the points lost, by
    objective; a candidate over the budget can be on the front (it shows what the budget costs)."""
    scored = _scored(verdicts, objective)

    def dominates(a: Verdict, b: Verdict) -> bool:
        ao, bo = a.objective(objective), b.objective(objective)
        return ao <= bo and a.drop_points <= b.drop_points and (ao < bo or a.drop_points < b.drop_points)

    front = [v for v in scored if not any(dominates(o, v) for o in scored if o is not v)]
    return sorted(front, key=lambda v: (v.objective(objective), v.drop_points))


def pick(verdicts: list[Verdict], objective: str) -> Verdict | None:
    """The candidate within budget with the best objective (ties: fewer points lost), or None."""
    within = [v for v in _scored(verdicts, objective) if v.within_budget]
    return min(within, key=lambda v: (v.objective(objective), v.drop_points), default=None)
