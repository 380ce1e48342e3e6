"""Matching a sound: synth-in-the-loop search over DX7 voices."""
