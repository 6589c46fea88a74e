#!/usr/bin/env python3
"""Write the Alertmanager configuration, taking receivers and their secrets from the environment.

Alertmanager cannot read environment variables itself, and webhook URLs, Slack URLs and SMTP
passwords are secrets, so the committed part is this file (routing and inhibition, the same
everywhere) and the receivers come from variables at deploy time:

    CEPAGE_ALERT_WEBHOOK_URL          any webhook (incident tool, chat bridge)
    CEPAGE_ALERT_SLACK_WEBHOOK_URL    Slack incoming webhook; CEPAGE_ALERT_SLACK_CHANNEL (#alerts)
    CEPAGE_ALERT_EMAIL_TO             paging address for critical alerts, with
    CEPAGE_ALERT_EMAIL_FROM, CEPAGE_ALERT_SMTP_HOST (host:port), CEPAGE_ALERT_SMTP_USER,
    CEPAGE_ALERT_SMTP_PASSWORD
    CEPAGE_ALERT_RETRAIN_WEBHOOK_URL  the retrain trigger (``cepage trigger serve``): the drift and
                                      feedback-accuracy alerts also go there, and start a retrain;
    CEPAGE_ALERT_RETRAIN_WEBHOOK_TOKEN_FILE  a file holding the bearer token it requires (optional)

With none set, alerts are still grouped and shown in Alertmanager's UI, just not sent anywhere.

Why a renderer and not a committed alertmanager.yml with Alertmanager's ``*_file`` secret fields
(checked with Alertmanager 0.25, Debian's, which ``cepage up`` runs, and its ``amtool``): the
receivers are optional per environment, and Alertmanager's configuration has no conditionals,
no environment variables and no includes, so the receiver list itself has to be produced. A
``*_file`` field only moves a secret out of the file: a receiver whose file is missing still
loads (``amtool check-config`` passes) and then fails every notification, instead of being
absent; e-mail's ``to``, ``from`` and ``smarthost`` have no ``_file`` form (and an empty ``to`` is
refused); and 0.25's webhook has no ``url_file`` at all (it arrived in 0.26). One renderer serves
the three deployments (``cepage up``, the compose stack's ``alertmanager-config`` job, Ansible's
hosts through that job), so routing and receivers have one home.

Standard library only, so it runs wherever Python 3 does (the local stack, a container entrypoint):

    python3 monitoring/alertmanager/render.py --out /etc/alertmanager/alertmanager.yml

The output is JSON, which is valid YAML; the file is created readable by its owner only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Alerts that only repeat what "the service is down / not scraped" already says.
SYMPTOMS_OF_A_DOWN_SERVICE = (
    "CepageHighServerErrorRatio|CepageHighClientErrorRatio|CepageHighLatencyP99"
    "|CepageFeatureDrift|CepageFeatureMissingValues|CepageFeatureUnseenCategories"
    "|CepageLowFeedbackAccuracy"
)

# Alerts that start a retrain (stack/retrain_trigger.py's DEFAULT_ALERTS; docs/monitoring.md).
RETRAIN_ALERTS = "CepageFeatureDrift|CepageLowFeedbackAccuracy"


def notifiers(env: Mapping[str, str], *, page: bool) -> dict[str, list[dict[str, Any]]]:
    """The notification configs of one receiver; ``page`` adds e-mail (critical alerts only)."""
    configs: dict[str, list[dict[str, Any]]] = {}
    if env.get("CEPAGE_ALERT_WEBHOOK_URL"):
        configs["webhook_configs"] = [
            {"url": env["CEPAGE_ALERT_WEBHOOK_URL"], "send_resolved": True}
        ]
    if env.get("CEPAGE_ALERT_SLACK_WEBHOOK_URL"):
        configs["slack_configs"] = [
            {
                "api_url": env["CEPAGE_ALERT_SLACK_WEBHOOK_URL"],
                "channel": env.get("CEPAGE_ALERT_SLACK_CHANNEL", "#alerts"),
                "send_resolved": True,
                "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}",
                "text": (
                    "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ .Annotations.description }}"
                    "\nRunbook: {{ .Annotations.runbook_url }}\n{{ end }}"
                ),
            }
        ]
    if page and env.get("CEPAGE_ALERT_EMAIL_TO"):
        missing = [
            name
            for name in ("CEPAGE_ALERT_EMAIL_FROM", "CEPAGE_ALERT_SMTP_HOST")
            if not env.get(name)
        ]
        if missing:
            raise ValueError(f"CEPAGE_ALERT_EMAIL_TO is set but {', '.join(missing)} is not.")
        email: dict[str, Any] = {
            "to": env["CEPAGE_ALERT_EMAIL_TO"],
            "from": env["CEPAGE_ALERT_EMAIL_FROM"],
            "smarthost": env["CEPAGE_ALERT_SMTP_HOST"],
            "send_resolved": True,
        }
        if env.get("CEPAGE_ALERT_SMTP_USER"):
            email["auth_username"] = env["CEPAGE_ALERT_SMTP_USER"]
            email["auth_password"] = env.get("CEPAGE_ALERT_SMTP_PASSWORD", "")
        configs["email_configs"] = [email]
    return configs


def retrain_route(env: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The retrain trigger's route and receiver, when ``CEPAGE_ALERT_RETRAIN_WEBHOOK_URL`` is set.

    The route comes first with ``continue``, so the same alerts still reach a person; since a
    route that matched stops Alertmanager from falling back to the parent's receiver, a
    catch-all route to ``team`` then ends the list.
    """
    url = env.get("CEPAGE_ALERT_RETRAIN_WEBHOOK_URL")
    if not url:
        return [], []
    webhook: dict[str, Any] = {
        "url": url,
        # A resolved alert starts nothing: the receiver would only log it.
        "send_resolved": False,
    }
    if env.get("CEPAGE_ALERT_RETRAIN_WEBHOOK_TOKEN_FILE"):
        webhook["http_config"] = {
            "authorization": {
                "type": "Bearer",
                "credentials_file": env["CEPAGE_ALERT_RETRAIN_WEBHOOK_TOKEN_FILE"],
            }
        }
    route = {
        "matchers": [f'alertname=~"{RETRAIN_ALERTS}"'],
        "receiver": "retrain",
        "continue": True,
        # Several features drifting together are one delivery, one retrain; the receiver's
        # cooldown (6 h by default) decides, Alertmanager only re-sends as often as that.
        "group_by": ["alertname", "job"],
        "group_wait": "1m",
        "group_interval": "5m",
        "repeat_interval": "6h",
    }
    return [route], [{"name": "retrain", "webhook_configs": [webhook]}]


def build_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The whole configuration: routing a person wants at 3 a.m., receivers from ``env``."""
    retrain_routes, retrain_receivers = retrain_route(env)
    people: list[dict[str, Any]] = [
        {
            "matchers": ['severity="critical"'],
            "receiver": "oncall",
            "group_wait": "10s",
            "repeat_interval": "1h",
        }
    ]
    if retrain_routes:
        people.append({"receiver": "team"})  # what the parent would have done
    return {
        "route": {
            "receiver": "team",
            # One notification per alert and service, not one per feature or instance.
            "group_by": ["alertname", "job"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [*retrain_routes, *people],
        },
        "inhibit_rules": [
            # The service is down: its latency, errors and quality alerts add nothing.
            {
                "source_matchers": ['alertname=~"CepageServiceDown|CepageServiceNotScraped"'],
                "target_matchers": [f'alertname=~"{SYMPTOMS_OF_A_DOWN_SERVICE}"'],
                "equal": ["job"],
            },
            # A critical alert silences the warning of the same alert on the same target.
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", "job", "instance"],
            },
            # A full disk explains the memory and target alerts of that host.
            {
                "source_matchers": ['alertname="HostDiskSpaceLow"'],
                "target_matchers": ['alertname=~"HostMemoryPressure|TargetDown"'],
                "equal": ["instance"],
            },
        ],
        "receivers": [
            {"name": "team", **notifiers(env, page=False)},
            {"name": "oncall", **notifiers(env, page=True)},
            *retrain_receivers,
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    try:
        text = json.dumps(build_config(os.environ), indent=2) + "\n"
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
