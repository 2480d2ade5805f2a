"""Reading the CI templates in .github/ the way GitHub would, and running their shell steps here.

GitHub's runner cannot run here, so the tests take the workflows apart with the tools that do:
YAML for the structure, bash for the shell (word splitting, quoting and `${VAR:+...}` are bash's,
not a regex's), and the reconciler's own argument parser for every `reconciler ...` line.
GitHub expressions `${{ ... }}` are replaced by `{...}` (the expression's text in braces), so an
argument built from one stays recognisable: `--base origin/{github.base_ref}`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ruamel.yaml import YAML

from reconciler.cli.main import COMMANDS, _parse
from tests.conftest import ROOT

GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted((GITHUB / "actions").glob("*/action.yml"))
HOOKS = ROOT / ".pre-commit-hooks.yaml"

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.S)
#: A `reconciler COMMAND` anywhere in a script: each must be a call the tests can see and parse.
MENTION = re.compile(r"\breconciler\s+(?:" + "|".join(map(re.escape, COMMANDS)) + r")\b")


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def placeholder(text: str) -> str:
    """`origin/${{ github.base_ref }}` -> `origin/{github.base_ref}`."""
    return EXPRESSION.sub(lambda m: "{" + m.group(1) + "}", text)


@dataclass
class Step:
    """One step of a workflow job or of a composite action, with the env GitHub would give it."""

    file: Path
    job: str
    index: int
    body: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.job}:{self.body.get('id') or self.index}"

    @property
    def run(self) -> str | None:
        return self.body.get("run")


def steps(path: Path) -> Iterator[Step]:
    """Every step of a workflow (`jobs.*.steps`) or a composite action (`runs.steps`)."""
    doc = load(path)
    if "jobs" in doc:
        for job_id, job in doc["jobs"].items():
            env = {**(doc.get("env") or {}), **(job.get("env") or {})}
            for i, step in enumerate(job.get("steps") or []):
                yield Step(path, job_id, i, step, _env(env, step))
    else:
        for i, step in enumerate(doc["runs"].get("steps") or []):
            yield Step(path, "runs", i, step, _env({}, step))


def step_named(path: Path, name: str) -> Step:
    [found] = [s for s in steps(path) if s.body.get("name") == name]
    return found


def _env(outer: dict[str, Any], step: dict[str, Any]) -> dict[str, str]:
    return {key: placeholder(str(value)) for key, value in {**outer, **(step.get("env") or {})}.items()}


def all_steps() -> list[Step]:
    return [s for path in [*WORKFLOWS, *ACTIONS] for s in steps(path)]


# --- reconciler command lines ----------------------------------------------------------------------


def script_lines(script: str) -> list[str]:
    """Logical lines: backslash continuations joined, as the shell reads them."""
    return re.sub(r"\\\n", " ", script).splitlines()


def calls_in(script: str, env: dict[str, str], workdir: Path) -> list[list[str]]:
    """The argv of every line that starts with `reconciler`, as bash expands it with `env`.

    bash runs each such line with `reconciler` defined as a function that records its arguments,
    in `workdir` (redirections such as `> plan.md` land there), so quoting, `$VAR` and
    `${VAR:+--flag "$VAR"}` expand exactly as on the runner.
    """
    calls = []
    for line in script_lines(script):
        if not re.match(r"\s*reconciler\s", line):
            continue
        record = workdir / "argv"
        program = 'reconciler() { printf "%s\\0" "$@" > "$SLUICE_ARGV"; }\n' + line
        done = subprocess.run(["bash", "-c", program], cwd=workdir, capture_output=True, text=True, timeout=30,
                              env={"PATH": os.environ["PATH"], "HOME": str(workdir), **env,
                                   "SLUICE_ARGV": str(record)})
        assert record.exists(), f"bash did not reach `reconciler` in {line!r}: {done.stderr}"
        calls.append(record.read_text().split("\0")[:-1])
        record.unlink()
    return calls


def mentions(script: str) -> int:
    return sum(len(MENTION.findall(line)) for line in script_lines(script) if not line.lstrip().startswith("#"))


def parse_problem(argv: list[str]) -> str | None:
    """None when the real CLI parser accepts `argv`; else what it said."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = _parse(argv)
    if isinstance(result, argparse.Namespace):
        return None
    return (err.getvalue() + out.getvalue()).strip() or f"exit {result}"


# --- action references -----------------------------------------------------------------------------

USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)(?P<rest>.*)$")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s+# v\d+\.\d+\.\d+$")


def uses_lines(text: str) -> list[tuple[int, str, str]]:
    """(line number, reference, the rest of the line) of every `uses:` in a YAML text."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        match = USES_LINE.match(line)
        if match:
            found.append((number, match.group("ref").strip("'\""), match.group("rest")))
    return found


def pin_problems(text: str, name: str = "<text>") -> list[str]:
    """Supply-chain rule: a third-party action runs at a 40-hex commit (a tag can be moved), with
    `# vX.Y.Z` after it so a person and Dependabot can tell the version."""
    problems = []
    for number, ref, rest in uses_lines(text):
        if ref.startswith("./"):
            continue
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                problems.append(f"{name}:{number}: {ref}: pin the image by digest (@sha256:...)")
            continue
        if not PINNED.match(ref):
            problems.append(f"{name}:{number}: {ref}: pin by the full 40-hex commit SHA, not a tag or branch")
        elif not VERSION_COMMENT.match(rest):
            problems.append(f"{name}:{number}: {ref}: add the release it is, as ` # vX.Y.Z`, after the SHA")
    return problems


# --- running a step's shell ------------------------------------------------------------------------


@dataclass
class StepRun:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


def run_step(step: Step, workdir: Path, env: dict[str, str], path_dirs: tuple[Path, ...] = ()) -> StepRun:
    """Run a step's `run:` script with bash as the runner does (`bash -e`, or `-eo pipefail` for
    `shell: bash`), with GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, `env` over the step's own."""
    assert step.run is not None, step.id
    output, summary = workdir / ".github-output", workdir / ".github-summary"
    output.write_text(""), summary.write_text("")
    flags = ["--noprofile", "--norc", "-eo", "pipefail"] if step.body.get("shell") == "bash" else ["-e"]
    path = os.pathsep.join([*map(str, path_dirs), os.environ["PATH"]])
    full_env = {**os.environ, **step.env, **env, "PATH": path,
                "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
    done = subprocess.run(["bash", *flags, "-c", step.run], cwd=workdir, env=full_env, capture_output=True,
                          text=True, timeout=120)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return StepRun(done.returncode, done.stdout, done.stderr, outputs, summary.read_text())
