"""Snapshots of the full engine state, written to files at checkpoints."""
