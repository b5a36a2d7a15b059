"""The continuous auditor (auditor.py)."""
