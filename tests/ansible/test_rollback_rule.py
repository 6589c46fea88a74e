"""Which tag a rollback deploys on each host of a split deployment (prod's shape), without hosts.

playbooks/roles/cepage_stack/tasks/tag.yml runs for real on the controller, once per host of a
three-host inventory (a control host, then two service hosts one at a time, in site.yml's order),
each host with its own folder of recorded releases and last attempted tag. The rule: a rollback
leaves the environment's last attempt, and the control host (deployed first) decides the tag for
every host, so the fleet never ends on different tags (the prod rehearsal found hosts failing
"nothing to roll back to" after a deploy that stopped at the first service host:
tests/rehearsal/test_prod_stack.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ansible.conftest import ansible_env, tool
from tests.support.procs import BIN, ROOT

pytestmark = pytest.mark.ansible

TAG_TASKS = ROOT / "playbooks" / "roles" / "cepage_stack" / "tasks" / "tag.yml"
HOSTS = {
    "control": ["cepage-prod-control"],
    "service": ["cepage-prod-service-1", "cepage-prod-service-2"],
}


def rollback_tags(tmp_path: Path, history: dict[str, tuple[list[str], str]]) -> dict[str, str]:
    """Run tag.yml in rollback mode on each host whose (releases, attempted) ``history`` is given;
    the tag each host would deploy."""
    hostvars = {}
    for host, (releases, attempted) in history.items():
        folder = tmp_path / host
        folder.mkdir()
        (folder / "releases").write_text("".join(f"{tag}\n" for tag in releases))
        (folder / "attempted").write_text(f"{attempted}\n")
        hostvars[host] = {"cepage_stack_dir": str(folder)}
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": str(BIN / "python"),
            },
            "children": {
                group: {"hosts": {h: hostvars[h] for h in hosts}} for group, hosts in HOSTS.items()
            },
        }
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    common = {
        "cepage_environment": "prod",
        "cepage_stack_rollback": True,
        "cepage_stack_image_tag": "",
        "cepage_stack_image_digests": {},
        "cepage_stack_require_image_digests": True,
        "cepage_stack_pinned_images": ["service"],
        "cepage_stack_releases_file": "{{ cepage_stack_dir }}/releases",
        "cepage_stack_attempted_file": "{{ cepage_stack_dir }}/attempted",
        "cepage_stack_digests_file": "{{ cepage_stack_dir }}/release-digests.json",
    }
    tasks = [
        {"ansible.builtin.import_tasks": str(TAG_TASKS)},
        {
            "name": "What this host would deploy",
            "ansible.builtin.copy": {
                "content": "{{ cepage_stack_deploy_tag }}",
                "dest": "{{ cepage_stack_dir }}/deploys",
                "mode": "0644",
            },
        },
    ]
    plays = [
        {"hosts": "control", "gather_facts": False, "vars": common, "tasks": tasks},
        {"hosts": "service:!control", "gather_facts": False, "serial": 1,
         "max_fail_percentage": 0, "vars": common, "tasks": tasks},
    ]  # fmt: skip
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    done = subprocess.run(
        [tool("ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
         str(tmp_path / "play.yml")],
        env=ansible_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip  # nosec B603: the venv's ansible-playbook, fixed arguments
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return {host: (tmp_path / host / "deploys").read_text() for host in history}


def test_after_a_deploy_stopped_at_the_first_service_host_every_host_returns_to_v1(
    tmp_path: Path,
) -> None:
    """The control host took `broken` (its own services were fine), service-1 failed on it,
    service-2 was never reached: every host goes to v1, none fails for want of an older tag."""
    tags = rollback_tags(
        tmp_path,
        {
            "cepage-prod-control": (["v1", "broken"], "broken"),
            "cepage-prod-service-1": (["v1"], "broken"),
            "cepage-prod-service-2": (["v1"], "v1"),
        },
    )
    assert tags == dict.fromkeys(tags, "v1"), tags


def test_a_host_with_a_longer_history_is_not_taken_one_tag_too_far(tmp_path: Path) -> None:
    """service-2 has an older release than the others: it still follows the control host."""
    tags = rollback_tags(
        tmp_path,
        {
            "cepage-prod-control": (["v1", "v2", "v3"], "v3"),
            "cepage-prod-service-1": (["v1", "v2"], "v3"),
            "cepage-prod-service-2": (["v0", "v2"], "v2"),
        },
    )
    assert tags == dict.fromkeys(tags, "v2"), tags


def test_after_a_successful_deploy_every_host_returns_to_the_tag_before(tmp_path: Path) -> None:
    tags = rollback_tags(
        tmp_path,
        {host: (["v1", "v2"], "v2") for hosts in HOSTS.values() for host in hosts},
    )
    assert tags == dict.fromkeys(tags, "v1"), tags
