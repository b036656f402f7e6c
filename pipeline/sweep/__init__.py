"""Sweeps: a recipe's grid of exports and benchmarks, planned, cached, resumable, on a local or Ray executor."""
