"""Grafana checked for real: the provisioning a real Grafana loaded, through its HTTP API.

Grafana has no stand-in (no Debian, PyPI or npm package), so the `grafana` job of
.github/workflows/ci.yml starts compose's own `grafana` service (its image tag, mounts,
environment and hardening from compose/docker-compose.yml; its port published by
compose/docker-compose.dev.yml) with Prometheus on GitHub's runner, and runs this script::

    python scripts/ci/grafana_check.py env  --out FILE
    python scripts/ci/grafana_check.py api  --url URL --env-file FILE [--timeout SECONDS]
    python scripts/ci/grafana_check.py logs FILE

``env`` writes a compose env file with a fresh random value for every variable the compose files
require (``${NAME:?...}``): compose interpolates the whole file even to start one service.
``api`` waits until Grafana answers as the repository's provisioning says, then reports what
differs: its version is compose's image tag; every provisioned datasource exists with its uid,
name, type and (expanded) URL, is read-only and its health check passes, and nothing else is
there; every uid the dashboards reference is a provisioned datasource; every dashboard file of
every provider is loaded (search API, by uid), provisioned, from that file, in its provider's
folder, and no other dashboard or folder exists. ``logs`` fails on any error a provisioning
logger wrote, but for a provisioning folder the repository does not have (Grafana logs a
missing ``alerting/`` or ``plugins/`` folder as an error; there is nothing to load), which it
lists as a note. What Grafana is expected to load is read from the compose file (the grafana
service's bind mounts and environment) and the files it mounts, never written here.

Exit codes: 0 as provisioned, 1 a difference (each printed on its line), 2 a usage error.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "docker-compose.yml"
COMPOSE_FILES = (COMPOSE, ROOT / "compose" / "docker-compose.dev.yml")
SERVICE = "grafana"
# The provisioning kinds this script checks; a folder of another kind fails `api` until it does.
CHECKED_KINDS = frozenset({"datasources", "dashboards"})
# Datasource references that are no provisioned datasource: Grafana's own and the mixed one.
BUILTIN_DATASOURCES = frozenset({"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"})
GENERAL = "General"  # the folder of a provider that names none
HTTP_TIMEOUT_S = 10.0
POLL_S = 2.0
REQUIRED = re.compile(r"\$\{([A-Za-z_]\w*):?\?")
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)")
LOGFMT = re.compile(r'([A-Za-z_][\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')
ERROR_LEVELS = frozenset({"error", "eror", "crit", "critical", "fatal"})


class CheckError(Exception):
    """A setting or file this script cannot work with (exit 2)."""


# --- what the repository provisions -------------------------------------------------------------


@dataclass(frozen=True)
class Datasource:
    """One provisioned datasource, as its file writes it (``url`` not yet expanded)."""

    name: str
    uid: str
    type: str
    url: str
    editable: bool = False


@dataclass(frozen=True)
class Dashboard:
    """One dashboard file: its uid and title, its folder, its path under its provider's path."""

    uid: str
    title: str
    folder: str
    file: str


@dataclass(frozen=True)
class Provisioning:
    """What compose's Grafana is given: its image, environment, bind mounts (container path ->
    host path) and what the mounted provisioning folder makes it load."""

    image: str
    environment: dict[str, str]
    mounts: dict[str, Path]
    provisioning: str  # the container path of the provisioning folder
    kinds: frozenset[str]  # its subfolders
    datasources: tuple[Datasource, ...]
    dashboards: tuple[Dashboard, ...]
    references: frozenset[str] = field(default_factory=frozenset)  # datasource uids dashboards use

    @property
    def version(self) -> str:
        """The image's tag (a digest after it left out)."""
        reference = self.image.split("@", 1)[0]
        name, _, tag = reference.rpartition(":")
        if not name or "/" in tag:
            raise CheckError(f"{self.image}: no tag (compose pins every image)")
        return tag

    @property
    def folders(self) -> frozenset[str]:
        """The folders the providers create (General is Grafana's own, no folder)."""
        return frozenset(d.folder for d in self.dashboards if d.folder != GENERAL)


def compose_service(compose: Path = COMPOSE, service: str = SERVICE) -> dict[str, Any]:
    """The service's definition in the compose file (YAML merge keys resolved)."""
    data = yaml.safe_load(compose.read_text())
    try:
        definition = data["services"][service]
    except (KeyError, TypeError) as error:
        raise CheckError(f"{compose}: no service {service!r}") from error
    if not isinstance(definition, dict):
        raise CheckError(f"{compose}: service {service!r} is not a mapping")
    return definition


def bind_mounts(definition: Mapping[str, Any], base: Path) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes left out)."""
    mounts: dict[str, Path] = {}
    for volume in definition.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":", 1)[0]
        else:
            if volume.get("type") != "bind":
                continue
            source, target = str(volume["source"]), str(volume["target"])
        if source.startswith((".", "/", "~")):
            mounts[target.rstrip("/") or "/"] = (base / source).resolve()
    return mounts


def environment(definition: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (mapping or ``NAME=value`` list) as written."""
    raw = definition.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(name): "" if value is None else str(value) for name, value in raw.items()}


def host_path(mounts: Mapping[str, Path], container: str) -> Path:
    """Where a container path is on the host, through the deepest bind mount holding it."""
    container = container.rstrip("/")
    for target in sorted(mounts, key=len, reverse=True):
        if container == target or container.startswith(target + "/"):
            return mounts[target] / container[len(target) :].lstrip("/")
    raise CheckError(f"{container} is in no bind mount of the {SERVICE} service")


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def _datasources(folder: Path) -> list[Datasource]:
    found = []
    for path in _yaml_files(folder):
        for entry in (yaml.safe_load(path.read_text()) or {}).get("datasources") or []:
            if not entry.get("uid"):
                raise CheckError(f"{path}: datasource {entry.get('name')!r} has no fixed uid")
            found.append(
                Datasource(
                    name=str(entry["name"]),
                    uid=str(entry["uid"]),
                    type=str(entry["type"]),
                    url=str(entry.get("url", "")),
                    editable=bool(entry.get("editable", False)),
                )
            )
    return found


def _references(node: Any) -> Iterator[str]:
    """The datasource uids a dashboard's JSON names (variables like ``${DS}`` left out)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                uid = value.get("uid") if isinstance(value, dict) else value
                if isinstance(uid, str) and uid and not uid.startswith("$"):
                    yield uid
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _dashboards(folder: Path, mounts: Mapping[str, Path]) -> tuple[list[Dashboard], set[str]]:
    dashboards: list[Dashboard] = []
    references: set[str] = set()
    for path in _yaml_files(folder):
        for provider in (yaml.safe_load(path.read_text()) or {}).get("providers") or []:
            options = provider.get("options") or {}
            if provider.get("type", "file") != "file" or options.get("foldersFromFilesStructure"):
                raise CheckError(
                    f"{path}: provider {provider.get('name')!r}: only file providers with one "
                    "folder are checked (update scripts/ci/grafana_check.py)"
                )
            files = host_path(mounts, str(options["path"]))
            for file in sorted(files.rglob("*.json")):
                data = json.loads(file.read_text())
                if not data.get("uid"):
                    raise CheckError(f"{file}: no uid (dashboard uids are stable)")
                dashboards.append(
                    Dashboard(
                        str(data["uid"]),
                        str(data.get("title", "")),
                        str(provider.get("folder") or GENERAL),
                        file.relative_to(files).as_posix(),
                    )
                )
                references.update(_references(data))
    return dashboards, references - BUILTIN_DATASOURCES


def load_provisioning(compose: Path = COMPOSE, service: str = SERVICE) -> Provisioning:
    """What compose's ``service`` is given to load, read from the compose file and its mounts."""
    definition = compose_service(compose, service)
    mounts = bind_mounts(definition, compose.parent)
    provisioning = next((t for t in mounts if t.endswith("/provisioning")), None)
    if provisioning is None:
        raise CheckError(f"{compose}: {service} mounts no provisioning folder")
    folder = mounts[provisioning]
    kinds = frozenset(p.name for p in folder.iterdir() if p.is_dir())
    dashboards, references = _dashboards(folder / "dashboards", mounts)
    return Provisioning(
        image=str(definition["image"]),
        environment=environment(definition),
        mounts=mounts,
        provisioning=provisioning,
        kinds=kinds,
        datasources=tuple(_datasources(folder / "datasources")),
        dashboards=tuple(dashboards),
        references=frozenset(references),
    )


# --- compose's variables --------------------------------------------------------------------------


def required_variables(files: Sequence[Path] = COMPOSE_FILES) -> list[str]:
    """Every variable the compose files require (``${NAME:?message}`` or ``${NAME?message}``)."""
    names: set[str] = set()
    for path in files:
        names.update(
            n for text in _strings(yaml.safe_load(path.read_text())) for n in REQUIRED.findall(text)
        )
    return sorted(names)


def _strings(node: Any) -> Iterator[str]:
    """Every string of a parsed YAML document (keys and values; comments are gone)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """``value`` with compose's ``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``,
    ``${NAME:?message}`` and ``$$`` replaced as compose does."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        present = name in variables
        current = variables.get(name, "")
        if operator == ":-":
            return current or argument
        if operator == "-":
            return current if present else argument
        if operator in (":?", "?") and (not present or (operator == ":?" and not current)):
            raise CheckError(f"{name} is required: {argument}")
        return current

    return VARIABLE.sub(replace, value)


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (blank lines and ``#`` comments skipped)."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def write_env_file(out: Path, files: Sequence[Path] = COMPOSE_FILES) -> list[str]:
    """A fresh random value for each required variable, in a file only its owner reads."""
    names = required_variables(files)
    out.touch(mode=0o600)
    out.chmod(0o600)
    out.write_text("".join(f"{name}={secrets.token_hex(16)}\n" for name in names))
    return names


# --- Grafana's HTTP API ---------------------------------------------------------------------------


class Grafana:
    """Grafana's HTTP API with basic auth (its admin user)."""

    def __init__(self, url: str, user: str, password: str) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise CheckError(f"--url {url!r}: not an http(s) URL")
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}

    def get(self, path: str) -> tuple[int, Any]:
        """(status, parsed JSON body or the text) of ``GET path``; a network error raises."""
        request = urllib.request.Request(self.url + path, headers=self.headers)
        try:
            # The scheme is checked to be http(s) in __init__ (bandit B310: file:// and others).
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # nosec B310
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        text = body.decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text


def admin_credentials(prov: Provisioning, variables: Mapping[str, str]) -> tuple[str, str]:
    """The admin user and password compose gives Grafana, with the env file's values."""
    env = prov.environment
    user = interpolate(env.get("GF_SECURITY_ADMIN_USER", "admin"), variables) or "admin"
    password = interpolate(env.get("GF_SECURITY_ADMIN_PASSWORD", ""), variables)
    if not password:
        raise CheckError(f"compose gives {SERVICE} no GF_SECURITY_ADMIN_PASSWORD")
    return user, password


def _expected_url(source: Datasource, prov: Provisioning) -> str | None:
    """The datasource's URL as Grafana expands it from compose's environment; None when it names
    a variable compose does not set literally (then it is not compared)."""
    names = {m.group(1) or m.group(4) for m in VARIABLE.finditer(source.url) if m.group(0) != "$$"}
    literal = {n: prov.environment[n] for n in names if "$" not in prov.environment.get(n, "$")}
    if len(literal) < len(names):
        return None
    return interpolate(source.url, literal)


def _check_health(grafana: Grafana, prov: Provisioning) -> list[str]:
    status, health = grafana.get("/api/health")
    if status != 200 or not isinstance(health, dict):
        return [f"/api/health answered {status}: {health}"]
    problems = []
    if health.get("database") != "ok":
        problems.append(f"/api/health: database is {health.get('database')!r}, not 'ok'")
    version = str(health.get("version", ""))
    if prov.version not in (version, version.replace("+", "-")):
        problems.append(f"Grafana {version!r} runs, compose's image is {prov.image}")
    return problems


def _check_datasources(grafana: Grafana, prov: Provisioning) -> list[str]:
    problems = []
    status, listed = grafana.get("/api/datasources")
    if status != 200 or not isinstance(listed, list):
        return [f"/api/datasources answered {status}: {listed}"]
    wanted = {d.uid for d in prov.datasources}
    present = {str(d.get("uid")) for d in listed if isinstance(d, dict)}
    problems += [
        f"datasource {uid!r} is provisioned but missing" for uid in sorted(wanted - present)
    ]
    problems += [
        f"datasource {uid!r} is there but not provisioned" for uid in sorted(present - wanted)
    ]
    problems += [
        f"the dashboards use datasource uid {uid!r}, which is not provisioned"
        for uid in sorted(prov.references - wanted)
    ]
    for source in prov.datasources:
        if source.uid not in present:
            continue
        quoted = urllib.parse.quote(source.uid, safe="")
        status, found = grafana.get(f"/api/datasources/uid/{quoted}")
        if status != 200 or not isinstance(found, dict):
            problems.append(f"datasource {source.uid!r}: answered {status}: {found}")
            continue
        for key, want in (("name", source.name), ("type", source.type)):
            if found.get(key) != want:
                problems.append(
                    f"datasource {source.uid!r}: {key} {found.get(key)!r}, not {want!r}"
                )
        url = _expected_url(source, prov)
        if url is not None and found.get("url") != url:
            problems.append(f"datasource {source.uid!r}: url {found.get('url')!r}, not {url!r}")
        if found.get("readOnly") is source.editable:
            problems.append(
                f"datasource {source.uid!r}: readOnly is {found.get('readOnly')!r}, "
                f"its file says editable: {str(source.editable).lower()}"
            )
        status, health = grafana.get(f"/api/datasources/uid/{quoted}/health")
        if status != 200 or not isinstance(health, dict) or health.get("status") != "OK":
            problems.append(f"datasource {source.uid!r}: health check answered {status}: {health}")
    return problems


def _check_dashboards(grafana: Grafana, prov: Provisioning) -> list[str]:
    problems = []
    status, hits = grafana.get("/api/search?type=dash-db&limit=5000")
    if status != 200 or not isinstance(hits, list):
        return [f"/api/search answered {status}: {hits}"]
    found = {str(h.get("uid")): h for h in hits if isinstance(h, dict)}
    wanted = {d.uid: d for d in prov.dashboards}
    problems += [
        f"dashboard {uid!r} ({wanted[uid].file}) is not loaded"
        for uid in sorted(set(wanted) - set(found))
    ]
    problems += [
        f"dashboard {uid!r} is there but in no file" for uid in sorted(set(found) - set(wanted))
    ]
    for uid, dashboard in sorted(wanted.items()):
        if uid not in found:
            continue
        folder = found[uid].get("folderTitle") or GENERAL
        if folder != dashboard.folder:
            problems.append(f"dashboard {uid!r} is in folder {folder!r}, not {dashboard.folder!r}")
        quoted = urllib.parse.quote(uid, safe="")
        status, body = grafana.get(f"/api/dashboards/uid/{quoted}")
        if status != 200 or not isinstance(body, dict):
            problems.append(f"dashboard {uid!r}: answered {status}: {body}")
            continue
        meta, data = body.get("meta") or {}, body.get("dashboard") or {}
        if meta.get("provisioned") is not True:
            problems.append(f"dashboard {uid!r} is not provisioned read-only (allowUiUpdates)")
        if meta.get("provisionedExternalId") != dashboard.file:
            problems.append(
                f"dashboard {uid!r} comes from {meta.get('provisionedExternalId')!r}, "
                f"not {dashboard.file!r}"
            )
        if data.get("title") != dashboard.title:
            problems.append(
                f"dashboard {uid!r}: title {data.get('title')!r}, not {dashboard.title!r}"
            )
    status, folders = grafana.get("/api/folders")
    if status != 200 or not isinstance(folders, list):
        return [*problems, f"/api/folders answered {status}: {folders}"]
    titles = {str(f.get("title")) for f in folders if isinstance(f, dict)}
    if titles != prov.folders:
        problems.append(f"folders {sorted(titles)}, the providers make {sorted(prov.folders)}")
    return problems


def check_api(grafana: Grafana, prov: Provisioning) -> list[str]:
    """Every difference between what Grafana serves and what the repository provisions."""
    problems = [
        f"provisioning folder {kind}/ is mounted but not checked: teach scripts/ci/grafana_check.py"
        for kind in sorted(prov.kinds - CHECKED_KINDS)
    ]
    if not prov.datasources or not prov.dashboards:
        problems.append("the repository provisions no datasource or no dashboard: nothing to check")
    health = _check_health(grafana, prov)
    if health:
        return problems + health
    return problems + _check_datasources(grafana, prov) + _check_dashboards(grafana, prov)


def wait_for(grafana: Grafana, prov: Provisioning, timeout_s: float) -> list[str]:
    """``check_api`` again every POLL_S until it finds nothing or ``timeout_s`` is spent
    (Grafana answers before its provisioning and Prometheus are done); the last problems."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            problems = check_api(grafana, prov)
        except OSError as error:  # not listening yet
            problems = [f"{grafana.url}: {error}"]
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(POLL_S)


# --- Grafana's log --------------------------------------------------------------------------------


def _fields(line: str) -> dict[str, str]:
    """A log line's fields: Grafana's console format (logfmt) or its JSON format."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items()}
    fields: dict[str, str] = {}
    for key, raw in LOGFMT.findall(line):
        value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
        fields.setdefault(key, value)
    return fields


def check_logs(text: str, prov: Provisioning) -> tuple[list[str], list[str]]:
    """(problems, notes) of Grafana's log: every error a provisioning logger wrote is a problem,
    but a missing folder of a kind the repository does not provision, which is a note."""
    problems: list[str] = []
    notes: list[str] = []
    lines = 0
    for line in text.splitlines():
        fields = _fields(line)
        if "logger" not in fields:
            continue
        lines += 1
        level = (fields.get("level") or fields.get("lvl") or "").lower()
        logger = fields["logger"]
        message = fields.get("msg", "")
        if level not in ERROR_LEVELS or not (
            logger.startswith("provisioning") or "provision" in message.lower()
        ):
            continue
        folder = fields.get("path", "").rstrip("/")
        kind = folder.rsplit("/", 1)[-1]
        if (
            folder == f"{prov.provisioning}/{kind}"
            and kind not in prov.kinds
            and "no such file or directory" in fields.get("error", "").lower()
        ):
            notes.append(f"{logger}: no {kind}/ folder in the repository, nothing to load")
        else:
            problems.append(line.strip())
    if not lines:
        problems.append("no Grafana log line in the file (was it written by `compose logs`?)")
    return problems, notes


# --- command line ---------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env", help="write a compose env file for the required variables")
    env.add_argument("--out", type=Path, required=True)
    api = commands.add_parser("api", help="check Grafana through its HTTP API")
    api.add_argument("--url", required=True, help="Grafana's base URL, e.g. http://127.0.0.1:3001")
    api.add_argument("--env-file", type=Path, required=True, help="the file `env` wrote")
    api.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")
    logs = commands.add_parser("logs", help="check Grafana's log for provisioning errors")
    logs.add_argument("file", type=Path, help="`docker compose logs --no-log-prefix grafana`")
    for sub in (api, logs):
        sub.add_argument("--compose", type=Path, default=COMPOSE, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        if args.command == "env":
            names = write_env_file(args.out)
            print(f"{args.out}: {', '.join(names)}")
            return 0
        prov = load_provisioning(args.compose)
        print(
            f"{prov.image}: datasources {[d.uid for d in prov.datasources]}, "
            f"dashboards {[d.uid for d in prov.dashboards]}, folders {sorted(prov.folders)}"
        )
        if args.command == "api":
            user, password = admin_credentials(prov, read_env_file(args.env_file))
            problems = wait_for(Grafana(args.url, user, password), prov, args.timeout)
        else:
            problems, notes = check_logs(args.file.read_text(errors="replace"), prov)
            for note in notes:
                print(f"note: {note}")
    except (CheckError, OSError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"ok: Grafana {args.command} as provisioned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
