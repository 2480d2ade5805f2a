"""The synthetic fleet of bench/fleet.py is a valid repository, and the same seed gives the same bytes."""

from __future__ import annotations

from pathlib import Path

from bench.fleet import generate_fleet
from reconciler.adapters.repo_loader import load_repository


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.yaml"))}


def test_small_fleet_loads_with_no_findings(tmp_path: Path) -> None:
    generate_fleet(tmp_path, models=5, versions=3, environments=2, seed=7)

    result = load_repository(tmp_path)

    assert result.findings == []
    assert result.files == 5 * 3 + 2
    assert len(result.repository.releases) == 15
    assert sorted(result.repository.environments) == ["prod", "staging"]
    assert all(len(env.models) == 5 for env in result.repository.environments.values())
    assert result.repository.environments["prod"].policy.protected


def test_fleet_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    generate_fleet(tmp_path / "a", models=5, versions=3, environments=2, seed=1)
    generate_fleet(tmp_path / "b", models=5, versions=3, environments=2, seed=1)
    generate_fleet(tmp_path / "c", models=5, versions=3, environments=2, seed=2)

    first = _files(tmp_path / "a")
    assert first == _files(tmp_path / "b")
    assert first != _files(tmp_path / "c")
    assert all(text.startswith(b"# yaml-language-server: $schema=") for text in first.values())


def test_fleet_uses_every_pointer_kind(tmp_path: Path) -> None:
    """Across a few environments some models have a candidate (at some stage) and some a standby."""
    generate_fleet(tmp_path, models=12, versions=4, environments=4, seed=3)

    result = load_repository(tmp_path)

    assert result.findings == []
    deployments = [d for env in result.repository.environments.values() for d in env.models.values()]
    assert any(d.candidate for d in deployments)
    assert any(d.standby for d in deployments)
    assert any(d.candidate and d.stage > 0 for d in deployments)
