"""Constrained scalar types shared by the release and environment models.

Each type checks its value with a message a person can act on ("use lowercase letters ...")
instead of pydantic's bare regex error, and still exports its pattern to JSON Schema so that
editors flag the same mistakes as people type.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Callable

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from .huggingface import PATTERNS as HF_PATTERNS
from .huggingface import SHAPES as HF_SHAPES
from .huggingface import Role, reference_problem


#: A validator's message may carry its own fix after this separator ("what is wrong; fix: what to
#: do"): `schema_errors` splits it, so `validate` shows that fix rather than "correct the value".
VALUE_ERROR_FIX = "; fix: "


class ValueProblem(ValueError):
    """A validator's refusal with its own fix, written with VALUE_ERROR_FIX between the two."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}{VALUE_ERROR_FIX}{fix}")
        self.problem, self.fix = problem, fix


def explained(err: ValueError) -> str:
    """The refusal with its fix, for a command-line message: "'5' has no unit: write ..."."""
    return f"{err.problem}: {err.fix}" if isinstance(err, ValueProblem) else str(err)


class Frozen(BaseModel):
    """Base for every model: immutable, and unknown keys are errors (typos never pass silently)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


def _checked(pattern: str, explain: Callable[[str], str]) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(explain(value))
        return value

    return check


def checked_str(pattern: str, explain: Callable[[str], str]) -> object:
    """A str type validated by `pattern`, failing with `explain(value)`; the pattern goes to JSON Schema."""
    return Annotated[
        str, AfterValidator(_checked(pattern, explain)), Field(json_schema_extra={"pattern": f"^(?:{pattern})$"})
    ]


DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
SEMVER = r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
SHA256 = r"[0-9a-f]{64}"
MD5 = r"[0-9a-f]{32}"
GIT_REVISION = r"[0-9a-f]{7,40}"
OTHER_URI = r"(s3|gs|https)://[^\s]+"  # hf:// has its own rules: reconciler/core/huggingface.py
IMAGE_BY_DIGEST = r"[a-z0-9][a-z0-9._\-/:]*@sha256:[0-9a-f]{64}"
EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"

DnsLabel = checked_str(
    DNS_LABEL,
    lambda v: f"{v!r} is not a valid Kubernetes name (DNS-1123 label): use at most 63 lowercase letters, "
    "digits and '-', starting and ending with a letter or digit",
)
SemVer = checked_str(
    SEMVER,
    lambda v: f"{v!r} is not a semantic version: write MAJOR.MINOR.PATCH, e.g. \"1.3.0\" (quoted, no 'v')",
)
Sha256 = checked_str(
    SHA256,
    lambda v: f"{v!r} is not a sha256: write the 64 lowercase hex digits of the digest (sha256sum prints them)",
)
Md5 = checked_str(
    MD5,
    lambda v: f"{v!r} is not an md5: write the 32 lowercase hex digits DVC records (`md5:` in the .dvc file)",
)
GitRevision = checked_str(
    GIT_REVISION,
    lambda v: f"{v!r} is not a git commit hash: write 7 to 40 lowercase hex digits (git rev-parse --short HEAD)",
)
ImageByDigest = checked_str(
    IMAGE_BY_DIGEST,
    lambda v: f"{v!r} is not pinned by digest: write registry/repository@sha256:<64 hex digits> "
    "(a tag can move; a digest cannot)",
)
Email = checked_str(EMAIL, lambda v: f"{v!r} is not an e-mail address")


def _uri(role: Role) -> object:
    """A URI type: s3://, gs:// and https:// as before; hf:// must pin a full commit as `role` needs."""

    def explain(value: str) -> str:
        if value.startswith("hf://"):
            return reference_problem(value, role) or f"{value!r} is not {HF_SHAPES[role]}"
        return f"{value!r} is not an artifact URI: use s3://, gs://, hf:// or https://"

    return checked_str(f"{OTHER_URI}|{HF_PATTERNS[role]}", explain)


_PATH_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9._-]*"


def _repository_path(suffix: str, example: str) -> object:
    """A file inside the repository: relative, plain names (no `.`, `..` or hidden segments, no
    backslashes), ending in `suffix`. The loader still refuses a link that leaves the repository."""

    def explain(value: str) -> str:
        if value.startswith(("/", "\\")) or value[1:2] == ":":
            why = "is an absolute path"
        elif ".." in value.replace("\\", "/").split("/"):
            why = "leaves the repository (`..`)"
        else:
            why = f"is not a relative path of plain names{' ending in ' + suffix if suffix else ''}"
        return f"{value!r} {why}: write a path inside the repository, e.g. {example}"

    return checked_str(rf"(?:{_PATH_SEGMENT}/)*{_PATH_SEGMENT}{re.escape(suffix)}", explain)


RepositoryPath = _repository_path("", "evaluations/suites/safety.jsonl")
RepositoryJsonPath = _repository_path(".json", "evaluations/chat-assistant/1.3.0.json")

ArtifactUri = _uri("artifact")  # a bundle file: hf://<org>/<repo>@<40-hex commit>/<file>
DatasetUri = _uri("dataset")  # hf://datasets/<org>/<name>@<40-hex commit>[/<path>]
BaseModelSource = _uri("base_model")  # hf://<org>/<repo>[@<40-hex commit>]; the commit goes in `revision`

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Percent = Annotated[int, Field(ge=0, le=100)]

# Ranges (docs/formats.md, "Ranges"): every number has one, so a typo of a few extra digits is a
# finding with its line, not a value that overflows arithmetic or reaches a ConfigMap.
MAX_TOKENS = 1_048_576  # 2**20: above every context window and output limit in use
MAX_MEASURE = 1e15  # metric bounds, benchmark scores, numeric hyperparameters (1.5e13 tokens seen): any sane unit fits
MAX_REQUESTS = 10**12
MAX_NODES = 10_000
#: A metric value or bound in its own unit (ms, ratio, score): finite and within +-1e15.
Measure = Annotated[float, Field(ge=-MAX_MEASURE, le=MAX_MEASURE)]
#: A whole number as 64-bit consumers (JSON parsers, Go, Java) read it.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_DURATION = r"([0-9]+(ms|s|m|h|d))+"
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

#: The longest duration any field takes (docs/formats.md, "Ranges"): a year is longer than any stage,
#: standby window or timeout needs, and far inside what timedelta and the clock arithmetic hold.
MAX_DURATION = timedelta(days=365)
_MAX_MS = int(MAX_DURATION.total_seconds()) * 1000


def parse_duration(value: object) -> object:
    """Read a Prometheus-style duration: "90s", "1h30m", "2d" -> timedelta, at most MAX_DURATION.

    Other types pass through for pydantic to reject; a bare number is refused because its unit
    would be a guess ("is 60 seconds or minutes?"). The total is summed in integer milliseconds and
    checked before a timedelta exists, so "99999999999999999999h" is a ValueError, not an overflow.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or isinstance(value, (int, float)):
        raise ValueProblem(f"{value!r} has no unit", 'write a duration such as "30s", "5m", "1h" or "2d"')
    if not isinstance(value, str):
        return value
    if not re.fullmatch(_DURATION, value):
        raise ValueProblem(f"{shortened(value)!r} is not a duration", 'write e.g. "30s", "5m", "1h30m" or "2d"')
    total = 0
    for number, unit in _DURATION_PART.findall(value):
        digits = number.lstrip("0")
        if len(digits) > 15:  # more than any unit of MAX_DURATION, and int() of 4,300+ digits would fail
            total = _MAX_MS + 1
            break
        total += int(digits or "0") * _UNIT_MS[unit]
    if total > _MAX_MS:
        raise ValueProblem(f"{shortened(value)!r} is longer than {format_duration(MAX_DURATION)}, the longest duration "
                           "Sluice takes", f"write at most {format_duration(MAX_DURATION)} (docs/formats.md, \"Ranges\")")
    return timedelta(milliseconds=total)


def shortened(text: str, keep: int = 24) -> str:
    """A value as messages show it: long text keeps its ends and says how long it was."""
    return text if len(text) <= keep else f"{text[:keep // 2]}…{text[-keep // 2:]} ({len(text)} characters)"


def format_duration(value: timedelta) -> str:
    """The shortest Prometheus-style form: timedelta(hours=1, minutes=30) -> "1h30m"."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": f"^{_DURATION}$", "examples": ["30s", "5m", "1h", "2d"],
                    "$comment": "at most 365d (docs/formats.md, Ranges)"}),
]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


def version_key(version: str) -> tuple[int, int, int]:
    """Order semantic versions numerically: "1.10.0" > "1.9.3"."""
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch


def version_label(version: str) -> str:
    """The pod and Istio subset label of a version: "1.3.0" -> "v1.3.0"."""
    return f"v{version}"


def utc_text(at: datetime) -> str:
    """An instant as people and YAML read it: 2026-11-22T10:00:00Z (UTC, seconds)."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
