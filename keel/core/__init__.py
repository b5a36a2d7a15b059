"""The pure exchange core: state, commands, events, matching, ledger, invariants.

Nothing in this package reads a clock, randomness, the environment, files or the
network. It imports the standard library and msgspec only.
"""
