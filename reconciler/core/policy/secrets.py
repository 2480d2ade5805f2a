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
from collections.abc import Mapping
from typing import Iterator

from . import Scope, policy
from .resources import PlannedResource, get, is_unknown, typed, UnknownValue
from .results import PolicyResult, guarded, violation

# (kind, patterns): each pattern starts with a literal, so the regex engine can skip to candidates
# fast; a match must also start a word (not preceded by a letter, digit or "_"), checked in code.
SHAPES: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...] = tuple(
    (kind, tuple(re.compile(p) for p in patterns)) for kind, patterns in (
        ("an AWS access key id", (r"AKIA[0-9A-Z]{16}(?![0-9A-Za-z])", r"ASIA[0-9A-Z]{16}(?![0-9A-Za-z])")),
        ("a private key", (r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",)),
        ("a GitHub token", (r"gh[pousr]_[A-Za-z0-9]{30,}(?![A-Za-z0-9])", r"github_pat_[A-Za-z0-9_]{22,}")),
        ("a Slack token", (r"xox[abposr]-[A-Za-z0-9-]{10,}",)),
        ("a Slack webhook URL", (r"hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+",)),
        ("a Hugging Face token", (r"hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])",)),
        ("an OpenAI-style API key", (r"sk-(?:proj-|ant-|live-)?[A-Za-z0-9_-]{20,}",)),
        ("a JSON web token", (r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",)),
        ("a bearer token", (r"Bearer\s+[A-Za-z0-9._~+/-]{20,}=*", r"bearer\s+[A-Za-z0-9._~+/-]{20,}=*")),
    ))

# `password = "hunter22"`, `"api_key": "abc..."`, `HF_TOKEN: xyz...`: a key ending in a secret word, then
# a literal value. A value followed by `(` or `.` is code (a call, an attribute) naming a secret, not
# holding one. The words are found in the lower-cased text (a case-sensitive search is several times
# faster than a case-insensitive one), then the rest is matched in the original text.
_SECRET_WORD = r"(?:password|passwd|secret[_-]?key|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)"
_WORD = re.compile(_SECRET_WORD)
_ASSIGNED = re.compile(r"""["']?[ \t]*[:=][ \t]*(?P<quote>["']?)(?P<value>[^\s"'(),;{}\[\]<>$]{8,})(?P=quote)(?![(.\w])""")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_]")
SECRET_KEY = re.compile(rf"(?i)(?:^|[^a-z]){_SECRET_WORD}(?:$|[^a-z])")
NOT_SECRETS = re.compile(r"(?i)(?:sha256:)?[0-9a-f]{64}|(?:redacted|changeme|placeholder|example|x{8,}|\*{8,})")
FIX = ("keep credentials out of ConfigMaps (and out of release files): put them in a Kubernetes Secret or your "
       "secret store, and reference it (secretKeyRef, a mounted Secret, IRSA/workload identity); rotate the "
       "exposed one")


def masked(value: str) -> str:
    """A secret as messages show it: its first four characters and its length, never the rest."""
    return f"{value[:4]}... ({len(value)} characters)"


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _starts_word(text: str, position: int) -> bool:
    return position == 0 or not _WORD_CHAR.match(text, position - 1)


def secret_findings(text: str) -> list[tuple[str, int, str]]:
    """(kind, line, the matched text) for each secret-looking value in `text`.

    Example: 'key_id = AKIA...' (20 characters) -> [("an AWS access key id", 1, "AKIA...")].
    """
    found: list[tuple[str, int, str]] = []
    for kind, patterns in SHAPES:
        for pattern in patterns:
            found += [(kind, _line(text, m.start()), m.group(0)) for m in pattern.finditer(text)
                      if kind in ("a private key", "a Slack webhook URL") or _starts_word(text, m.start())]
    lowered = text.lower()
    if len(lowered) != len(text):  # a few non-ASCII letters change length when lower-cased
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    for word in _WORD.finditer(lowered):
        match = _ASSIGNED.match(text, word.end())
        if match is None:
            continue
        value = match.group("value")
        if NOT_SECRETS.fullmatch(value) or any(value in f[2] or f[2] in value for f in found):
            continue
        start = word.start()
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-"):
            start -= 1  # the whole key: HF_TOKEN, client_secret
        key = text[start:word.end()]
        found.append((f"a value assigned to {key!r}", _line(text, word.start()), value))
    return sorted(found, key=lambda f: f[1])


def _scan(resource: PlannedResource, who: str, key: str, value: object) -> Iterator[PolicyResult]:
    if is_unknown(value):
        raise UnknownValue(f"data.{key}")
    if not isinstance(value, str):
        return
    where = f"data[{key!r}]"
    stripped = value.strip()
    if SECRET_KEY.search(key) and stripped and "\n" not in stripped and not NOT_SECRETS.fullmatch(stripped):
        yield violation(who, f"{where} is named like a secret and holds a value ({masked(stripped)})", FIX,
                        resource.urn)
        return
    for kind, line, match in secret_findings(value):
        yield violation(who, f"{where} line {line} holds what looks like {kind} ({masked(match)})", FIX,
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
