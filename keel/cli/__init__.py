"""Operator and user command line: `keel ...` (typer). Owns no trading rules."""
