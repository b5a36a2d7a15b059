"""A node: engine, log, sequencer and snapshots composed into one process."""
