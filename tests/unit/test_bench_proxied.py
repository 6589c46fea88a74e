"""bench/proxied.py and its lines in the report: the prod proxy's API site turned into the
bench's Caddyfile (on the repository's real site file), the replicas' request counts, and target 1
through the proxy met or missed by made-up figures. tests/docker/test_proxy.py has the real Caddy
load the Caddyfile made here."""

from __future__ import annotations

import re

import pytest

from bench.errors import BenchError
from bench.load import LoadResult
from bench.proxied import SITE_FILE, api_site_block, bench_caddyfile
from bench.report import PROXY_1, PROXY_2, ServerResult, proxy_lines
from bench.servers import SERVERS, served_requests

UPSTREAMS = ["127.0.0.1:4001", "127.0.0.1:4002"]


def directives(text: str) -> list[str]:
    """The non-comment lines, stripped."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_the_bench_serves_the_api_site_of_the_prod_file_with_its_balancing() -> None:
    site = SITE_FILE.read_text()
    made = bench_caddyfile(site, 18090, UPSTREAMS)
    body = directives(made)
    assert "http://:18090 {" in body
    # The addresses take the place of the lookup, inside the reverse_proxy block.
    block = body[body.index("reverse_proxy {") :]
    assert block[1] == "to 127.0.0.1:4001 127.0.0.1:4002"
    assert not any(line.startswith(("dynamic", "import", "refresh")) for line in body)
    # Every balancing line of the prod file's reverse_proxy block, as it is.
    prod = directives("\n".join(api_site_block(site)))
    for setting in ("lb_policy", "fail_duration"):
        ours = [line for line in prod if line.startswith(setting)]
        assert ours and ours[0] in body, setting
    # The rest of the site too (the /metrics refusal, the body limit), but not the UI's site.
    assert "respond @inside_only 404" in body
    assert not any("ui:8501" in line for line in body)
    assert made.count("{") == made.count("}")


def test_a_site_file_without_a_looked_up_upstream_is_refused() -> None:
    site = SITE_FILE.read_text()
    fixed = re.sub(r"dynamic a service 3000 \{[^}]*\}", "to service:3000", site)
    assert fixed != site
    with pytest.raises(BenchError, match="dynamic a"):
        bench_caddyfile(fixed, 18090, UPSTREAMS)
    with pytest.raises(BenchError, match="no API site"):
        bench_caddyfile("localhost {\n}\n", 18090, UPSTREAMS)


def test_the_proxied_servers_run_the_launcher_with_their_replicas() -> None:
    for key, replicas in ((PROXY_2, 2), (PROXY_1, 1)):
        argv = SERVERS[key].argv(18090)
        assert argv[1:] == ["-m", "bench.proxied", "--port", "18090", "--replicas", str(replicas)]
        assert SERVERS[key].replicas == replicas


METRICS = """\
# TYPE bentoml_service_request_total counter
bentoml_service_request_total{endpoint="/predict",http_response_code="200",service_name="cepage"} 1200.0
bentoml_service_request_total{endpoint="/predict",http_response_code="422",service_name="cepage"} 7.0
bentoml_service_request_total{endpoint="/feedback",http_response_code="200",service_name="cepage"} 30.0
cepage_predictions_total{label="Barbera"} 999.0
"""  # noqa: E501


def test_served_requests_counts_answered_predictions_only() -> None:
    assert served_requests(METRICS) == 1200
    assert served_requests(METRICS, "/feedback") == 30
    assert served_requests("") == 0


def cell(rps: float) -> LoadResult:
    return LoadResult(clients=32, requests=1000, ok_per_s=rps, p50_ms=20.0, p99_ms=60.0, errors=0)


def server(key: str, rps: float, replicas: list[int] | None = None) -> ServerResult:
    result = ServerResult(key=key, title=key, cells=[cell(rps)])
    result.replica_requests = replicas or []
    return result


def test_target_1_through_the_proxy_met_and_missed() -> None:
    direct = cell(1000)
    both = {PROXY_2: server(PROXY_2, 1700, [900, 1100]), PROXY_1: server(PROXY_1, 950)}
    met = "\n".join(proxy_lines(both, direct))
    assert (
        "2 replicas ÷ 1 worker direct, req/s at 32 clients: **1.70x** — target ≥ 1.6x: met" in met
    )
    assert "requests per replica behind the proxy (the whole run): 45 % / 55 %" in met
    assert "1 replica behind it ÷ 1 worker direct, req/s at 32 clients: **0.95x**" in met
    assert "2 replicas ÷ 1 replica, req/s at 32 clients: **1.79x**" in met
    missed = "\n".join(proxy_lines({PROXY_2: server(PROXY_2, 1100, [0, 5000])}, direct))
    assert "**1.10x** — target ≥ 1.6x: MISSED" in missed
    assert "0 % / 100 %" in missed
    assert proxy_lines({}, direct) == []
