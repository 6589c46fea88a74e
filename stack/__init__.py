"""The local stack (``cepage up``) and the process helpers it shares with the benchmarks and tests.

- ``processes``: start a server in its own session, wait for it, stop its whole tree.
- ``home``: a ``CEPAGE_HOME`` (the environment of a process living in it, a served model in it).
- ``monitoring``: Prometheus, Alertmanager and node_exporter for the local stack.
- ``local``: ``cepage up`` itself (what to start, in which order, supervised until Ctrl-C).
"""
