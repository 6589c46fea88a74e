"""bento/listeners.py on the objects BentoML's serve_http hands to circus (made here the same
way); the spread itself is measured on a real `bentoml serve` in tests/integration."""

from __future__ import annotations

import logging
import shlex
import socket
import sys

import pytest
from bentoml.serving import create_watcher
from circus.sockets import CircusSocket
from circus.util import replace_gnu_args
from circus.watcher import Watcher

from bento import listeners
from stack.processes import free_port


def serve_http_shapes(workers: int, port: int) -> tuple[list[Watcher], list[CircusSocket]]:
    """What _bentoml_impl.server.serving.serve_http builds before it calls the arbiter."""
    shared = CircusSocket(name=listeners.API_SOCKET, host="127.0.0.1", port=port, backlog=64)
    args = ["-m", "_bentoml_impl.worker.service", "bento.service:Classifier",
            "--fd", listeners.PLACEHOLDER, "--worker-id", "$(CIRCUS.WID)",
            "--args", '{"a": "b c"}']  # fmt: skip
    service = create_watcher(name="service", cmd=sys.executable, args=args, numprocesses=workers)
    return [service], [shared]


def test_several_workers_get_a_reuseport_socket_named_in_their_command() -> None:
    watchers, sockets = serve_http_shapes(2, free_port())
    [service], [shared] = watchers, sockets
    [own] = listeners.socket_per_worker(watchers, sockets)
    assert own is not shared and own.so_reuseport and own.name == listeners.API_SOCKET
    assert (own.host, own.port, own.backlog) == (shared.host, shared.port, 64)
    # circus binds a socket per process only when its placeholder is in the command.
    assert service.args is None and listeners.PLACEHOLDER in service.cmd
    assert service.cmd.endswith('--args \'{"a": "b c"}\'')
    assert shared.fileno() == -1  # closed: never bound


def test_circus_makes_the_argv_the_workers_had() -> None:
    watchers, sockets = serve_http_shapes(2, free_port())
    before = [
        replace_gnu_args(a, sockets={listeners.API_SOCKET: 7}, wid=2) for a in watchers[0].args
    ]
    listeners.socket_per_worker(watchers, sockets)
    after = shlex.split(replace_gnu_args(watchers[0].cmd, sockets={listeners.API_SOCKET: 7}, wid=2))
    assert after == [sys.executable, *before]
    assert "--fd" in after and after[after.index("--fd") + 1] == "7"
    assert after[after.index("--worker-id") + 1] == "2"


def test_one_worker_or_any_port_keeps_the_shared_socket() -> None:
    for workers, port in ((1, free_port()), (2, 0)):
        watchers, sockets = serve_http_shapes(workers, port)
        assert listeners.socket_per_worker(watchers, sockets) == sockets
        assert watchers[0].args is not None


def test_an_unexpected_shape_changes_nothing_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    watchers, sockets = serve_http_shapes(2, free_port())
    watchers[0].args = ["--fd", "3"]  # another BentoML: no placeholder where expected
    with caplog.at_level(logging.WARNING, logger="bentoml.cepage"):
        assert listeners.socket_per_worker(watchers, sockets) == sockets
    assert "share one socket" in caplog.text


def test_a_port_in_use_is_refused_before_any_worker_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        watchers, sockets = serve_http_shapes(2, taken.getsockname()[1])
        with pytest.raises(OSError, match="in use"):
            listeners.socket_per_worker(watchers, sockets)
