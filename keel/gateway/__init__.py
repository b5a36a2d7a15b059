"""The Backpack-compatible REST gateway and the operator API (`keel serve`).

A shell in the STYLE.md sense: it decodes requests, converts decimal strings to the
engine's integers, submits commands to the sequencer, and encodes the durable outcome.
No trading rule lives here. See docs/api.md.
"""
