"""Helpers shared by the test suite: real processes, free ports, CI-aware skips."""
