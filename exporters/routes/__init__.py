"""Converter chains from one source framework to one target format."""
