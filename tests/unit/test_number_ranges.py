"""Every duration, count and number in the release and environment files has a documented range
(docs/formats.md, "Ranges"): a huge, negative or 400-digit value is a finding at its own file, line
and YAML path, never a traceback and never a value that reaches a ConfigMap.

The table names one field of each kind in each model; the example repository is copied once per
module and each case restores the file it changed.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main
from reconciler.core.types import MAX_DURATION, parse_duration

from ..conftest import ROOT, copy_example, mutate_yaml

RELEASE = "releases/chat-assistant/1.3.0.yaml"
ENVIRONMENT = "environments/staging.yaml"
FOUR_HUNDRED_DIGITS = int("9" * 400)

DURATION = ("99999999999999999999h", "9" * 400 + "s", "366d", "-1h")
COUNT = (FOUR_HUNDRED_DIGITS, 2**63, -1)
NUMBER = (1e300, -1e300, FOUR_HUNDRED_DIGITS)
FRACTION = (1.5, -0.1, FOUR_HUNDRED_DIGITS)

FIELDS: list[tuple[str, tuple[Any, ...], tuple[Any, ...]]] = [
    # release: durations
    (RELEASE, ("rollout", "stages", 1, "min_duration"), DURATION),
    (RELEASE, ("rollout", "standby_window"), DURATION),
    (RELEASE, ("rollout", "dead_mans_switch", "max_silence"), DURATION),
    (RELEASE, ("bundle", "routing", "request_timeout"), DURATION),
    # release: counts
    (RELEASE, ("bundle", "generation", "max_tokens"), COUNT),
    (RELEASE, ("bundle", "routing", "max_input_tokens"), COUNT),
    (RELEASE, ("bundle", "routing", "max_concurrent_requests"), COUNT),
    (RELEASE, ("bundle", "weights", "size_bytes"), COUNT),
    (RELEASE, ("bundle", "serving", "gpus"), COUNT),
    (RELEASE, ("lineage", "dataset", "size_bytes"), COUNT),
    (RELEASE, ("lineage", "training", "gpu_count"), COUNT),
    (RELEASE, ("rollout", "stages", 1, "min_requests"), COUNT),
    # release: numbers and rates
    (RELEASE, ("bundle", "generation", "temperature"), NUMBER),
    (RELEASE, ("bundle", "generation", "top_p"), FRACTION),
    (RELEASE, ("bundle", "safety", "max_toxicity_score"), FRACTION),
    (RELEASE, ("lineage", "hyperparameters", "lora_rank"), NUMBER),
    (RELEASE, ("lineage", "hyperparameters", "learning_rate"), NUMBER),
    (RELEASE, ("evaluation", "toxicity"), FRACTION),
    (RELEASE, ("evaluation", "latency_p99_ms"), NUMBER),
    (RELEASE, ("evaluation", "benchmarks", "mt_bench"), NUMBER),
    (RELEASE, ("rollout", "stages", 1, "weight"), COUNT),
    (RELEASE, ("rollout", "stages", 1, "gates", 0, "max_ratio_to_stable"), NUMBER),
    (RELEASE, ("rollout", "stages", 1, "gates", 1, "max"), NUMBER),
    (RELEASE, ("rollout", "rollback_triggers", 1, "max"), NUMBER),
    # environment
    (ENVIRONMENT, ("metrics", "window"), DURATION),
    (ENVIRONMENT, ("metrics", "timeout"), DURATION),
    (ENVIRONMENT, ("metrics", "max_staleness"), DURATION),
    (ENVIRONMENT, ("gpu_pools", 0, "gpus_per_node"), COUNT),
    (ENVIRONMENT, ("gpu_pools", 0, "min_nodes"), COUNT),
    (ENVIRONMENT, ("gpu_pools", 0, "max_nodes"), COUNT),
    (ENVIRONMENT, ("gpu_pools", 0, "disk_gib"), COUNT),
    (ENVIRONMENT, ("models", "chat-assistant", "replicas"), COUNT),
    (ENVIRONMENT, ("models", "chat-assistant", "stage"), COUNT),
    (ENVIRONMENT, ("policy", "required_approvals"), COUNT),
    (ENVIRONMENT, ("policy", "predeployment", "max_latency_increase"), NUMBER),
    (ENVIRONMENT, ("policy", "predeployment", "max_toxicity"), FRACTION),
]
CASES = [pytest.param(file, path, value, id=f"{'.'.join(map(str, path))}={str(value)[:24]}")
         for file, path, values in FIELDS for value in values]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example(tmp_path_factory.mktemp("ranges") / "repo")


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(data: Any) -> None:
        for part in path[:-1]:
            data = data.setdefault(part, {}) if isinstance(part, str) else data[part]
        data[path[-1]] = value
    return change


def _validate(repo: Path) -> tuple[int, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(repo), "--format", "json"])
    return code, json.loads(out.getvalue())


def _yaml_path(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _validate_with(repo: Path, file: str, path: tuple[Any, ...], value: Any) -> tuple[int, dict[str, Any]]:
    """Validate with one value changed, then put the file back."""
    original = (repo / file).read_bytes()
    try:
        mutate_yaml(repo / file, _set(path, value))
        return _validate(repo)
    finally:
        (repo / file).write_bytes(original)


@pytest.mark.parametrize(("file", "path", "value"), CASES)
def test_an_out_of_range_value_is_a_located_finding(repo: Path, file: str, path: tuple[Any, ...], value: Any) -> None:
    code, report = _validate_with(repo, file, path, value)
    assert code == 1
    [finding] = [e for e in report["errors"] if e["file"] == file and e["path"] == _yaml_path(path)]
    assert finding["line"] >= 1 and finding["fix"]
    assert len(finding["message"]) < 300, finding  # a 400-digit value is shortened, not echoed
    assert "9" * 40 not in finding["message"]


def test_the_example_values_are_in_range(repo: Path) -> None:
    assert _validate(repo) == (0, _validate(repo)[1]) and _validate(repo)[1]["errors"] == []


def test_a_duration_beyond_the_range_is_refused_before_any_arithmetic() -> None:
    assert parse_duration("365d") == MAX_DURATION == timedelta(days=365)
    for text in ("99999999999999999999h", "365d1ms", "9" * 5000 + "ms"):
        with pytest.raises(ValueError, match="longer than 365d"):
            parse_duration(text)


def test_validate_of_an_overflowing_duration_exits_1_with_file_line_and_path(tmp_path: Path) -> None:
    """The issue's reproduction, as a person runs it: a subprocess, no traceback."""
    repo = copy_example(tmp_path / "repo")
    text = (repo / RELEASE).read_text(encoding="utf-8")
    (repo / RELEASE).write_text(text.replace("min_duration: 1h", "min_duration: 99999999999999999999h", 1),
                                encoding="utf-8")
    line = text.splitlines().index("      min_duration: 1h") + 1
    done = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(repo)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert f"{RELEASE}:{line}:7: error: rollout.stages[1].min_duration: " in done.stdout + done.stderr
    assert "longer than 365d" in done.stdout + done.stderr


def test_a_rollout_has_at_most_100_stages_so_a_stage_index_fits(repo: Path) -> None:
    original = (repo / RELEASE).read_bytes()
    try:
        mutate_yaml(repo / RELEASE, _set(("rollout", "stages"), [{"weight": 0}] * 100 + [{"weight": 100}]))
        code, report = _validate(repo)
    finally:
        (repo / RELEASE).write_bytes(original)
    assert code == 1
    [finding] = [e for e in report["errors"] if e["path"] == "rollout.stages" and e["rule"] == "schema"]
    assert "at most 100 items" in finding["message"]


@pytest.mark.parametrize(("value", "problem", "fix"), [
    ("99999999999999999999h", "longer than 365d", "write at most 365d"),
    (60, "has no unit", 'write a duration such as "30s"'),
    ("an hour", "is not a duration", 'write e.g. "30s"'),
])
def test_a_bad_duration_gets_its_own_fix_not_a_generic_one(repo: Path, value: Any, problem: str, fix: str) -> None:
    path = ("rollout", "stages", 1, "min_duration")
    code, report = _validate_with(repo, RELEASE, path, value)
    [finding] = [e for e in report["errors"] if e["path"] == _yaml_path(path)]
    assert code == 1 and problem in finding["message"] and fix not in finding["message"]
    assert finding["fix"].startswith(fix) and "correct the value" not in finding["fix"]
