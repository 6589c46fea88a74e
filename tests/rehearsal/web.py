"""HTTPS requests to a site by its name, through a port published on 127.0.0.1.

The proxy serves each site under its own name (api.DOMAIN, mlflow.DOMAIN) with certificates
from its own CA (a ``.internal`` domain): the request connects to 127.0.0.1:PORT, sends the
site's name in TLS's SNI and the Host header, and verifies the certificate against that CA, as a
browser resolving the name to that address would.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    """By lower-case name."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class PinnedConnection(http.client.HTTPSConnection):
    """An HTTPS connection to ``address`` for the site named ``host`` (SNI, Host, certificate)."""

    def __init__(self, host: str, address: tuple[str, int], context: ssl.SSLContext) -> None:
        super().__init__(host, address[1], context=context, timeout=30)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection(self._address, timeout=30)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def request(
    site: str,
    port: int,
    path: str,
    ca_pem: str,
    *,
    method: str = "GET",
    body: Any = None,
    auth: tuple[str, str] | None = None,
) -> Response:
    """One HTTPS request to ``site`` (a name) at 127.0.0.1:``port``, verified against ``ca_pem``."""
    context = ssl.create_default_context(cadata=ca_pem)
    connection = PinnedConnection(site, ("127.0.0.1", port), context)
    headers = {"Host": site}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Response(response.status, headers, response.read())
    finally:
        connection.close()
