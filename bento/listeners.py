"""One listening socket per worker (SO_REUSEPORT), so connections spread over every worker.

`bentoml serve` binds one socket in its arbiter and every worker accepts from it. Each worker's
event loop accepts until the queue is empty, so the first to wake takes a whole burst: 32
connections opened together all landed on one worker (`ss -tnp`: 32 and 0), and a second worker
made a keep-alive client slower, not faster (docs/performance.md). With one SO_REUSEPORT socket
per worker, the kernel hashes each new connection to one worker's own queue instead.

Circus, BentoML's process manager, does exactly that for a socket marked `so_reuseport`: it binds
a new socket for each process it spawns and hands that process its descriptor (and lets go of its
own copy, so a worker that dies takes its socket, and its share of new connections, with it). It
looks for the socket's placeholder in the watcher's command, though, where BentoML 1.4 puts it in
the arguments, and BentoML has no setting for it. So `install()` wraps the function that hands
the sockets and watchers to circus, `bentoml._internal.utils.circus.create_standalone_arbiter`,
which `serve_http` looks up when it runs, after `bentoml serve` has imported the service (where
`install()` is called): the API socket becomes a reuseport one, and the workers' arguments move
into their command. Everything else (environment, hooks, Prometheus, TLS) stays BentoML's. When
the shapes it expects are not there (another BentoML), it changes nothing and says so. A program
that calls `serve_http` itself, in a process that has not imported the service before, keeps
BentoML's shared socket (`serve_http` looks the function up before it loads the service).
"""

from __future__ import annotations

import logging
import shlex
import socket
from collections.abc import Sequence
from typing import Any

# Under "bentoml": the arbiter only shows the records of the loggers BentoML configures.
logger = logging.getLogger("bentoml.cepage")

API_SOCKET = "_bento_api_server"  # _bentoml_impl.server.serving.API_SERVER_NAME
SERVICE_WATCHER = "service"  # the watcher serve_http names for the API workers
PLACEHOLDER = f"$(circus.sockets.{API_SOCKET})"
_INSTALLED = "_cepage_socket_per_worker"


def install() -> None:
    """Make the next `serve_http` of this process give each worker its own socket (idempotent)."""
    from bentoml._internal.utils import circus

    original = circus.create_standalone_arbiter
    if getattr(original, _INSTALLED, False):
        return

    def create_standalone_arbiter(watchers: list[Any], **kwargs: Any) -> Any:
        kwargs["sockets"] = socket_per_worker(watchers, kwargs.get("sockets") or [])
        return original(watchers, **kwargs)

    setattr(create_standalone_arbiter, _INSTALLED, True)
    circus.create_standalone_arbiter = create_standalone_arbiter


def socket_per_worker(watchers: Sequence[Any], sockets: Sequence[Any]) -> list[Any]:
    """``sockets`` with the API's shared socket replaced by a reuseport one, and the API
    watcher's command made to name it (what circus checks); both unchanged when not needed."""
    from circus.sockets import CircusSocket

    shared = next((s for s in sockets if s.name == API_SOCKET), None)
    service = next((w for w in watchers if w.name == SERVICE_WATCHER), None)
    if shared is None or service is None or PLACEHOLDER not in (service.args or []):
        logger.warning(
            "BentoML's arbiter is not shaped as cepage expects (no %r socket or %r watcher): "
            "its workers share one socket, and a burst of connections may land on one worker.",
            API_SOCKET,
            SERVICE_WATCHER,
        )
        return list(sockets)
    # Port 0 (any free port): each worker's socket would get a port of its own.
    if (
        service.numprocesses < 2
        or shared.is_unix
        or shared.port == 0
        or not hasattr(socket, "SO_REUSEPORT")
    ):
        return list(sockets)
    ensure_free(shared.host, shared.port, shared.family)
    family = "AF_INET6" if shared.family == socket.AF_INET6 else "AF_INET"
    own = CircusSocket.load_from_config(
        {
            "name": API_SOCKET,
            "host": shared.host,
            "port": shared.port,
            "family": family,
            "backlog": shared.backlog,
            "so_reuseport": True,
        }
    )
    shared.close()  # made by serve_http, not bound yet: nothing listens on it
    service.cmd = shlex.join([*shlex.split(service.cmd), *service.args])
    service.args = None
    logger.info("%d workers, each with its own listening socket", service.numprocesses)
    return [own if s is shared else s for s in sockets]


def ensure_free(host: str, port: int, family: int) -> None:
    """Refuse a port something already listens on, as BentoML's own bind would: the workers bind
    theirs only when they are spawned, and a second server on the same port with SO_REUSEPORT
    (a forgotten `make up`, same user) would otherwise join the first one's group silently and
    take half of its connections."""
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    finally:
        probe.close()
