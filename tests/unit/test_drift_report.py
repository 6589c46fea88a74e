"""The drift report's window, its usage errors, and where its library may and may not go.

The report itself, on a real log and a real MLflow store: tests/integration/test_drift_report.py.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from stack.home import cepage, stack_env
from tests.support.procs import ROOT
from train.drift_report import Window

# Evidently and the heavy parts it brings: none may reach the service image.
REPORT_ONLY = ("evidently", "plotly", "statsmodels", "litestar", "nltk")


def test_the_last_days_end_today_and_include_it() -> None:
    window = Window.last_days(7, date(2026, 11, 30))
    assert (window.first, window.last) == (date(2026, 11, 24), date(2026, 11, 30))
    assert window.start == datetime(2026, 11, 24, tzinfo=UTC)
    # The end is exclusive: the whole last day is in, the next midnight is not.
    assert window.end == datetime(2026, 12, 1, tzinfo=UTC)
    assert str(window) == "2026-11-24..2026-11-30"
    assert Window.last_days(1, date(2026, 11, 30)).first == date(2026, 11, 30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-11-30", "--to", "2026-11-01"), "starts (2026-11-30) after it ends"),
        (("--from", "30/11/2026"), "--from takes a day as YYYY-MM-DD"),
        (("--since-days", "0"), "--since-days"),
    ],
)
def test_a_bad_window_is_a_usage_error(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = cepage("report", *args, env=stack_env(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert not (tmp_path / "reports").exists()


def test_evidently_stays_out_of_the_service_and_retrain_images() -> None:
    """The service image installs service.lock; the retrain image the `train` extra
    (compose/retrain/Dockerfile). Evidently is the `report` extra, which `dev` includes."""
    service_lock = (ROOT / "requirements" / "service.lock").read_text().lower()
    dev_lock = (ROOT / "requirements" / "dev.lock").read_text().lower()
    for name in REPORT_ONLY:
        assert f"\n{name}==" not in service_lock, name
        assert f"\n{name}==" in dev_lock, name
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    assert not any("evidently" in r for r in extras["train"] + extras["service"])
    assert any(r.startswith("evidently") for r in extras["report"])
    assert any("report" in r for r in extras["dev"] if r.startswith("cepage["))
    assert '".[train]"' in (ROOT / "compose" / "retrain" / "Dockerfile").read_text()


def test_nothing_imports_evidently_until_a_report_is_built() -> None:
    """`cepage --help` and every other command stay as fast as before: Evidently (~2.5 s to
    import) is imported by the report's build only."""
    code = (
        "import sys, cli.main, train.drift_report, cli.report; "
        "sys.exit('evidently' in sys.modules or 'plotly' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
