"""A Prometheus URL carries no credentials and names no link-local or cloud metadata address unless
explicitly allowed: `metrics.allow_link_local: true` in the environment, `--allow-link-local` on the
command line. One function (core/urls.py) decides for both."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.core.urls import prometheus_url_problem

from ..conftest import ROOT, mutate_yaml

STAGING = "environments/staging.yaml"

REFUSED_LINK_LOCAL = [
    "http://169.254.169.254/",  # AWS, Azure, OpenStack metadata
    "http://169.254.10.20:9090",
    "http://[fe80::1]:9090",
    "http://[fe80::1%25eth0]:9090",
    "http://[fd00:ec2::254]/",  # AWS metadata over IPv6
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.google.internal./",
    "http://metadata/",
    "http://100.100.100.200/",  # Alibaba Cloud
    "http://2852039166/",  # 169.254.169.254 written as one number
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://[::ffff:169.254.169.254]/",
]
ACCEPTED = [
    "http://prometheus.monitoring.svc:9090",
    "https://prom.acme.example/prometheus",
    "http://127.0.0.1:9090",
    "http://10.0.0.5:9090",
    "http://[::1]:9090",
    "http://metadata-exporter.monitoring.svc:9090",  # only the exact metadata names count
]
WITH_CREDENTIALS = ["http://admin:hunter2@prometheus.monitoring.svc:9090", "https://token@prom.acme.example/"]


@pytest.mark.parametrize("url", REFUSED_LINK_LOCAL)
def test_link_local_and_metadata_hosts_are_refused_unless_allowed(url: str) -> None:
    problem = prometheus_url_problem(url, allow_link_local=False)
    assert problem is not None and "metrics.allow_link_local: true" in problem
    assert ("metadata" in problem) or ("link-local" in problem)
    assert prometheus_url_problem(url, allow_link_local=True) is None


@pytest.mark.parametrize("url", ACCEPTED)
def test_ordinary_hosts_are_accepted(url: str) -> None:
    assert prometheus_url_problem(url, allow_link_local=False) is None


@pytest.mark.parametrize("url", WITH_CREDENTIALS)
def test_credentials_are_refused_even_when_link_local_is_allowed(url: str) -> None:
    problem = prometheus_url_problem(url, allow_link_local=True)
    assert problem is not None and "credentials" in problem and "proxy" in problem
    assert "hunter2" not in problem and "token@" not in problem


def _validate(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", "validate", str(repo)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_validate_reports_the_environment_file_line_and_path(example_repo: Path) -> None:
    mutate_yaml(example_repo / STAGING,
                lambda d: d["metrics"].__setitem__("prometheus_url", "http://169.254.169.254/latest"))
    line = next(i for i, text in enumerate((example_repo / STAGING).read_text().splitlines(), 1)
                if "prometheus_url:" in text)
    done = _validate(example_repo)
    assert done.returncode == 1
    assert f"{STAGING}:{line}:3: error: metrics.prometheus_url: 169.254.169.254 is a cloud instance metadata " \
        "service" in done.stdout
    mutate_yaml(example_repo / STAGING, lambda d: d["metrics"].__setitem__("allow_link_local", True))
    assert _validate(example_repo).returncode == 0


def test_validate_refuses_a_password_in_the_url_and_does_not_print_it(example_repo: Path) -> None:
    mutate_yaml(example_repo / STAGING,
                lambda d: d["metrics"].__setitem__("prometheus_url", "http://sluice:hunter2@prom.acme.example:9090"))
    done = _validate(example_repo)
    assert done.returncode == 1
    assert "metrics.prometheus_url: carries credentials" in done.stdout
    assert "hunter2" not in done.stdout + done.stderr


@pytest.mark.parametrize("command", [
    ["reconcile", "--dry-run"],
    ["report", "chat-assistant", "--environment", "staging", "--out", "report.html"],
])
@pytest.mark.parametrize(("url", "expected"), [
    ("http://169.254.169.254/", "pass --allow-link-local"),
    ("http://admin:hunter2@prom.acme.example/", "carries credentials"),
])
def test_the_prometheus_flag_is_checked_the_same_way(example_repo: Path, command: list[str], url: str,
                                                     expected: str) -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", *command, str(example_repo), "--prometheus", url],
                          capture_output=True, text=True, cwd=example_repo, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"reconciler {command[0]}: --prometheus ")
    assert expected in done.stderr and "hunter2" not in done.stderr
    assert not (example_repo / "report.html").exists()


def test_the_allowance_flag_lets_the_check_pass() -> None:
    from reconciler.cli.main import checked_prometheus_url

    assert checked_prometheus_url("http://169.254.10.20:9090", allow_link_local=True) == "http://169.254.10.20:9090"
    assert checked_prometheus_url(None, allow_link_local=False) is None
