"""Answers Grafana's health check only: the rehearsal has no Grafana (see Dockerfile)."""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/api/health":
            body, status = {"database": "ok", "version": "rehearsal-placeholder"}, 200
        else:
            body, status = {"message": "Grafana placeholder: no Grafana in this rehearsal"}, 503
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("0.0.0.0", 3000), Handler).serve_forever()
