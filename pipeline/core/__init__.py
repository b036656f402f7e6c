"""The core layer: errors, registries, files, tensor specs and bundles, datasets, manifests and records.

It imports nothing else of the project; every other package builds on it.
"""
