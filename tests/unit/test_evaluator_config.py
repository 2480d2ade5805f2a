"""The evaluator's config file and its command: errors name the file, the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.evaluator.__main__ import main
from reconciler.evaluator.config import ConfigError, ModelService, load_config, model_endpoint

GOOD: dict[str, Any] = {
    "app": "chat-assistant", "namespace": "llm-serving", "listen_port": 8080,
    "stable": {"version": "v1.2.0", "url": "http://chat-assistant-v1-2-0.llm-serving.svc.cluster.local:8000"},
    "candidate": {"version": "v1.3.0", "url": "http://chat-assistant-v1-3-0.llm-serving.svc.cluster.local:8000"},
    "expects_json": False,
    "judge": {"url": "http://judge.llm-serving.svc:8000", "model": "judge-model"},
    "classifier": {"url": "http://guard.llm-serving.svc:8000", "model": "meta-llama/Llama-Guard-3-1B"},
    "max_concurrency": 4, "queue_size": 32, "timeout_seconds": 90, "retries": 2, "divergence_threshold": 0.6,
}


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "evaluator.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_the_documented_example_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert (config.candidate.version, config.judge and config.judge.model, config.timeout_seconds) == (
        "v1.3.0", "judge-model", 90.0)


def test_only_the_versions_are_required_beyond_names(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {k: GOOD[k] for k in ("app", "namespace", "stable", "candidate")}))
    assert (config.judge, config.classifier, config.max_concurrency, config.queue_size, config.retries) == (
        None, None, 4, 32, 2)


@pytest.mark.parametrize(("change", "message"), [
    ({"candidate": {"version": "1.3.0", "url": "http://x:8000"}}, "candidate.version: Value error, '1.3.0' is not a version label"),
    ({"stable": {"version": "v1.2.0", "url": "chat-assistant:8000"}}, "stable.url: Value error, 'chat-assistant:8000' is not an http(s) URL"),
    ({"max_concurrency": 0}, "max_concurrency: Input should be greater than or equal to 1"),
    ({"sample_percent": 5}, "sample_percent: Extra inputs are not permitted"),
    ({"divergence_threshold": 1.5}, "divergence_threshold: Input should be less than or equal to 1"),
])
def test_a_bad_field_is_named_with_the_file(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = write(tmp_path, GOOD | change)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)


def test_a_missing_file_says_where_it_should_come_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the evaluator config .* mount ConfigMap <model>-evaluator"):
        load_config(tmp_path / "absent.json")


def test_an_api_key_comes_from_the_environment_never_the_file() -> None:
    service = ModelService(url="https://judge.example.com", model="judge", api_key_env="JUDGE_API_KEY")
    assert model_endpoint(service, {"JUDGE_API_KEY": "sk-1"}).headers == {"Authorization": "Bearer sk-1"}
    with pytest.raises(ConfigError, match="JUDGE_API_KEY .* unset or empty"):
        model_endpoint(service, {})


def test_the_command_exits_2_on_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD | {"retries": -1})
    assert main(["--config", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"sluice-evaluator: {path}: retries: Input should be greater")
