"""Helpers the workflows and Make targets call (run as files or with ``python -m scripts.NAME``)."""
