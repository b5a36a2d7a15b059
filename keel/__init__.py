"""Keel: a deterministic, log-sourced cryptocurrency exchange."""

__version__ = "0.1.0"
