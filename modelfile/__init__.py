"""Reading a model file safely, shared by the training side and the service.

What they read is the same skops file, so what it may hold is one rule here (``trust.py``). It
needs scikit-learn and skops, which ``contracts/`` (standard library only, copied into the UI's
image) must not import, and neither ``train/`` nor ``bento/`` may import the other.
"""
