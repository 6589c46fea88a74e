"""The ``cepage`` command line: it parses options, calls the steps (``train/``) or the local
stack (``stack/``), and prints what happened. No step logic lives here."""
