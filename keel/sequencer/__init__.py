"""The sequencer: the single writer that numbers, stamps, applies and durably logs commands."""
