"""No secret-looking values in ConfigMaps: ConfigMaps are readable by anyone who can read the namespace.

Two kinds of evidence:
- a value with a credential's own shape: AWS access key ids (AKIA/ASIA + 16), private key blocks,
  GitHub (ghp_/gho_/ghs_/ghu_/ghr_, github_pat_), Slack (xox?- tokens, hooks.slack.com webhook
  paths), Hugging Face (hf_), OpenAI-style (sk-...) tokens, JWTs and bearer tokens;
- an assignment `password|secret|token|api_key|... = <literal>` (or a data key so named) whose value
  is a literal, not code: `token = os.environ.get("HF_TOKEN")` in the bundle fetcher names a secret
  without holding one, and sha256 digests are never secrets.

Messages never repeat a secret: they show its kind, where it is, and its first four characters.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Iterator, Mapping

from . import Scope, policy
from .resources import PlannedResource, get, is_unknown, typed, UnknownValue
from .results import PolicyResult, guarded, violation

SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Slack webhook URL", re.compile(r"hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("an OpenAI-style API key", re.compile(r"\bsk-(?:proj-|ant-|live-)?[A-Za-z0-9_-]{20,}")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    ("a bearer token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*")),
)

_SECRET_WORD = r"(?:password|passwd|pwd|secret|client[_-]?secret|token|auth[_-]?token|access[_-]?token|" \
               r"api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key)"
# `password = "hunter22"`, `"api_key": "abc..."`, `TOKEN: xyz...`; the value is a literal: it may not
# be followed by `(` or `.` (a call or an attribute: code naming a secret, not holding one).
ASSIGNMENT = re.compile(
    rf"""(?ix)(?<![A-Za-z0-9_]) (?P<key>[A-Za-z0-9_-]*{_SECRET_WORD}) ["']? \s* (?:=|:) \s*
    (?P<quote>["']?) (?P<value>[^\s"'(),;{{}}\[\]<>$]{{8,}}) (?P=quote) (?![(.\w])""")
SECRET_KEY = re.compile(rf"(?i)(?:^|[^a-z]){_SECRET_WORD}(?:$|[^a-z])")
NOT_SECRETS = re.compile(r"(?i)(?:sha256:)?[0-9a-f]{64}|(?:redacted|changeme|placeholder|example|x{8,}|\*{8,})")
FIX = ("keep credentials out of ConfigMaps (and out of release files): put them in a Kubernetes Secret or your "
       "secret store, and reference it (secretKeyRef, a mounted Secret, IRSA/workload identity); rotate the "
       "exposed one")


def _shown(value: str) -> str:
    return f"{value[:4]}... ({len(value)} characters)"


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def secret_findings(text: str) -> list[tuple[str, int, str]]:
    """(kind, line, the matched text) for each secret-looking value in `text`."""
    found: list[tuple[str, int, str]] = []
    for kind, pattern in SHAPES:
        for match in pattern.finditer(text):
            found.append((kind, _line(text, match.start()), match.group(0)))
    for match in ASSIGNMENT.finditer(text):
        value = match.group("value")
        if NOT_SECRETS.fullmatch(value) or any(value in f[2] or f[2] in value for f in found):
            continue
        found.append((f"a value assigned to {match.group('key')!r}", _line(text, match.start()), value))
    return sorted(found, key=lambda f: f[1])


def _scan(resource: PlannedResource, who: str, key: str, value: object) -> Iterator[PolicyResult]:
    if is_unknown(value):
        raise UnknownValue(f"data.{key}")
    if not isinstance(value, str):
        return
    where = f"data[{key!r}]"
    stripped = value.strip()
    if SECRET_KEY.search(key) and stripped and "\n" not in stripped and not NOT_SECRETS.fullmatch(stripped):
        yield violation(who, f"{where} is named like a secret and holds a value ({_shown(stripped)})", FIX,
                        resource.urn)
        return
    for kind, line, match in secret_findings(value):
        yield violation(who, f"{where} line {line} holds what looks like {kind} ({_shown(match)})", FIX,
                        resource.urn)


def _scan_all(resource: PlannedResource, who: str) -> Iterator[PolicyResult]:
    data = typed(get(resource.props, "data", default={}), Mapping, "data", "a map of strings")
    for key in sorted(data):
        yield from guarded(who, FIX, resource.urn, partial(_scan, resource, who, key, data[key]))


@policy("configmap-secrets",
        "ConfigMaps hold no secret-looking values (keys, tokens, passwords): those belong in Secrets",
        mandatory=True, scope=Scope.RESOURCE)
def configmap_secrets(resource: PlannedResource) -> Iterator[PolicyResult]:
    if not resource.is_kind("ConfigMap", "ConfigMapPatch"):
        return
    who = f"{resource.stack}: {resource.label}"
    yield from guarded(who, FIX, resource.urn, partial(_scan_all, resource, who))
