"""A synthetic Sluice fleet: N models x V versions of release files and E environments, for benchmarks.

    python -m bench.fleet OUT --models 100 --versions 10 --environments 10 [--seed 0]

writes `OUT/releases/<model>/<version>.yaml` and `OUT/environments/<env>.yaml` that look like the
example repository (same fields, comments, sizes of ~4 KB per release) and validate with zero
findings: DNS-1123 model names, semantic versions chained by `parent_version`, one GPU type per
model, pools sized for stable + candidate + standby, protected environments whose approvers signed
every live release, candidates that pass the pre-deployment gates. The same seed gives the same
bytes. The YAML is built as text (no YAML library), so 1,000 files take well under a second.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from math import ceil
from pathlib import Path

RELEASE_SCHEMA = "# yaml-language-server: $schema=../../schemas/release.schema.json"
ENVIRONMENT_SCHEMA = "# yaml-language-server: $schema=../schemas/environment.schema.json"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)

# Stage counts of the default rollouts (reconciler/core/release.py DEFAULT_STAGES); the explicit
# canary table written by `_rollout` has 6 stages as well.
STAGE_COUNT = {"canary": 6, "blue-green": 2, "shadow": 6}


@dataclass(frozen=True)
class Pool:
    name: str
    instance_type: str
    gpu_type: str
    gpus_per_node: int
    note: str


POOLS = {
    "a100": Pool("a100", "p4de.24xlarge", "nvidia-a100-80gb", 8, "8 x A100 80GB"),
    "h100": Pool("h100", "p5.48xlarge", "nvidia-h100-80gb", 8, "8 x H100 80GB"),
    "a10g": Pool("a10g", "g5.12xlarge", "nvidia-a10g", 4, "4 x A10G 24GB"),
    "l4": Pool("l4", "g6.12xlarge", "nvidia-l4", 4, "4 x L4 24GB"),
}


@dataclass(frozen=True)
class Family:
    """What the models of one kind share: base model, hardware, rollout style, evaluation scale."""

    kind: str
    base: str
    architecture: str
    pool: str
    gpus: int
    weights_bytes: int
    weights_file: str
    latency_ms: tuple[int, int]
    strategies: tuple[str, ...]
    purposes: tuple[str, ...]
    prompt: str
    benchmarks: tuple[tuple[str, float, float], ...]  # name, low, high
    temperature: float
    top_p: float
    max_tokens: int
    max_input_tokens: int
    concurrency: int
    timeout: str
    stop: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ("self-harm", "violence", "sexual-minors")
    classifier: bool = True
    few_shot: bool = True
    replicas: tuple[int, int] = (1, 4)


FAMILIES = (
    Family("chat", "meta-llama/Llama-3.1-70B-Instruct", "LlamaForCausalLM", "a100", 4, 141_107_412_992,
           "model.tar", (1500, 1900), ("canary", "canary", "shadow"),
           ("assistant", "support-chat", "helpdesk", "concierge", "advisor", "agent"), "support",
           (("mt_bench", 7.6, 8.6), ("support_resolution_rate", 0.62, 0.80)), 0.3, 0.9, 1024, 16384, 48, "90s"),
    Family("code", "Qwen/Qwen2.5-Coder-7B", "Qwen2ForCausalLM", "a10g", 1, 15_231_233_024,
           "model.safetensors", (190, 260), ("blue-green",),
           ("code-completion", "code-review", "sql-writer", "test-writer"), "fim",
           (("humaneval_fim", 0.70, 0.84), ("exact_match_monorepo", 0.35, 0.50)), 0.1, 0.95, 128, 8192, 128, "5s",
           stop=("\\n\\n", "<|endoftext|>"), blocked=("secrets",), classifier=False, few_shot=False,
           replicas=(2, 6)),
    Family("small", "meta-llama/Llama-3.1-8B-Instruct", "LlamaForCausalLM", "a10g", 1, 16_060_522_496,
           "model.tar", (420, 620), ("canary",),
           ("classifier", "router", "triage", "tagger", "extractor"), "triage",
           (("mmlu", 0.64, 0.72), ("routing_accuracy", 0.88, 0.97)), 0.0, 1.0, 256, 8192, 96, "20s",
           classifier=False, replicas=(2, 5)),
    Family("large", "meta-llama/Llama-3.3-70B-Instruct", "LlamaForCausalLM", "h100", 2, 141_107_412_992,
           "model.tar", (900, 1250), ("shadow", "canary"),
           ("summarizer", "writer", "researcher", "analyst"), "summarize",
           (("mt_bench", 8.0, 8.9), ("rouge_l", 0.38, 0.48)), 0.5, 0.95, 2048, 32768, 32, "180s"),
    Family("mistral", "mistralai/Mistral-7B-Instruct-v0.3", "MistralForCausalLM", "l4", 1, 14_496_047_104,
           "model.safetensors", (480, 700), ("canary", "blue-green"),
           ("translator", "faq-bot", "search-answers", "moderator"), "answers",
           (("mt_bench", 6.8, 7.6), ("faithfulness", 0.80, 0.92)), 0.2, 0.9, 512, 8192, 64, "30s",
           few_shot=False, replicas=(1, 3)),
)

TEAMS = ("billing", "search", "support", "docs", "legal", "people", "sales", "infra", "mobile", "web",
         "payments", "fraud", "growth", "ads", "maps", "travel", "health", "learning", "games", "media",
         "retail", "risk", "ops", "security")
AUTHORS = ("priya.raman", "diego.marin", "mei.tanaka", "omar.haddad", "lena.fischer", "sam.okoro",
           "ines.duarte", "tom.berg")
APPROVERS = (("alice.chen", "ml-lead"), ("bob.okafor", "safety"), ("carol.nguyen", "ml-lead"),
             ("dev.patel", "product"), ("erin.walsh", "safety"))
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1", "ap-northeast-1",
           "ca-central-1", "sa-east-1", "ap-south-1", "eu-north-1")
DOMAIN = "acme.example"


@dataclass
class ReleaseInfo:
    model: str
    version: str
    created_at: datetime
    approved_at: datetime
    strategy: str


@dataclass
class ModelInfo:
    name: str
    family: Family
    releases: list[ReleaseInfo] = field(default_factory=list)

    @property
    def pool(self) -> Pool:
        return POOLS[self.family.pool]


@dataclass(frozen=True)
class Fleet:
    root: Path
    models: int
    versions: int
    environments: int
    release_files: int
    environment_files: int
    bytes_written: int
    seconds: float


# --- small helpers -----------------------------------------------------------------------------------

def _hex(rng: random.Random, digits: int) -> str:
    """Lowercase hex with a letter other than e, so plain YAML never reads it as a number (4795393e2298)."""
    while True:
        text = f"{rng.getrandbits(digits * 4):0{digits}x}"
        if not text.isdigit() and any(c in "abcdf" for c in text):
            return text


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(value: float, places: int) -> str:
    text = f"{value:.{places}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _quoted_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{s}"' for s in items) + "]"


# --- the fleet plan ----------------------------------------------------------------------------------

def _model_names(rng: random.Random, count: int) -> list[tuple[str, Family]]:
    seen: set[str] = set()
    out = []
    for _ in range(count):
        family = rng.choice(FAMILIES)
        base = f"{rng.choice(TEAMS)}-{rng.choice(family.purposes)}"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}-{n}"
        seen.add(name)
        out.append((name, family))
    return sorted(out, key=lambda pair: pair[0])


def _versions(rng: random.Random, count: int) -> list[str]:
    major, minor, patch = rng.choice((1, 1, 1, 2, 3)), 0, 0
    out = []
    for i in range(count):
        if i:
            roll = rng.random()
            if roll < 0.05:
                major, minor, patch = major + 1, 0, 0
            elif roll < 0.25:
                patch += 1
            else:
                minor, patch = minor + 1, 0
        out.append(f"{major}.{minor}.{patch}")
    return out


def _environment_names(count: int) -> list[tuple[str, str, bool]]:
    """(name, region, protected): staging, prod, then prod-<region> / staging-<region> alternately."""
    out = [("staging", REGIONS[0], False), ("prod", REGIONS[0], True)][:count]
    i = 0
    while len(out) < count:
        region = REGIONS[1 + (i // 2) % (len(REGIONS) - 1)]
        lap = (i // 2) // (len(REGIONS) - 1)
        kind = "prod" if i % 2 == 0 else "staging"
        name = f"{kind}-{region}" + (f"-{lap + 1}" if lap else "")
        out.append((name, region, kind == "prod"))
        i += 1
    return out


# --- release files -----------------------------------------------------------------------------------

def _artifact(lines: list[str], key: str, uri: str, sha: str, size: int | None = None, indent: str = "  ") -> None:
    lines += [f"{indent}{key}:", f"{indent}  uri: {uri}", f"{indent}  sha256: {sha}"]
    if size is not None:
        lines.append(f"{indent}  size_bytes: {size}")


def _explicit_canary(lines: list[str], family: Family, latency_ms: float) -> None:
    lines += [
        "  # Written out to show the format; omitting `stages` gives docs/formats.md#default-stages-per-strategy.",
        "  stages:",
        "    - weight: 0                 # deployed, reachable with the header x-model-version",
        "    - weight: 1",
        "      min_duration: 1h",
        "      min_requests: 1000",
        "      gates:",
        "        - {metric: latency_p99_ms, max_ratio_to_stable: 1.2}",
        f"        - {{metric: ttft_p99_seconds, max: {_num(latency_ms / 1000, 2)}}}",
        "    - weight: 5",
        "      min_duration: 4h",
        "      min_requests: 10000       # enough for a 95%-confidence latency comparison",
        "      gates:",
        "        - {metric: quality_score, min_ratio_to_stable: 0.98}",
        "        - {metric: error_rate, max_increase_over_stable: 0.005}",
        "    - weight: 25",
        "      min_duration: 24h",
        "      min_requests: 50000",
        "      gates:",
        "        - {metric: safety_violation_rate, max_increase_over_stable: 0.001}",
        "    - weight: 50",
        "      min_duration: 48h",
        "      min_requests: 100000",
        "      gates:",
        "        - {metric: user_satisfaction, min_ratio_to_stable: 0.98}",
        "    - weight: 100",
        "  rollback_triggers:",
        "    - {metric: error_rate, max: 0.05}",
        f"    - {{metric: latency_p99_ms, max: {int(latency_ms * 2.5)}}}",
        "    - {metric: safety_violation_rate, max: 0.01}",
        "    - {metric: quality_score, min: 0.6}",
        "  dead_mans_switch:",
        "    max_silence: 10m",
    ]


def _release_text(rng: random.Random, model: ModelInfo, index: int, per_model: dict) -> tuple[str, ReleaseInfo]:
    """One release file; `per_model` carries what versions of the model share (digests, latency)."""
    fam = model.family
    name = model.name
    version = per_model["versions"][index]
    parent = per_model["versions"][index - 1] if index else None
    major_bump = parent is not None and parent.split(".")[0] != version.split(".")[0]
    if index == 0 or major_bump:
        per_model["tokenizer"] = _hex(rng, 64)
        per_model["config"] = _hex(rng, 64)
    # Semver as validate checks it: a PATCH keeps the parent's weights, prompt and examples.
    patch = index > 0 and not major_bump and version.split(".")[2] != "0"
    if not patch:
        per_model["weights"] = _hex(rng, 64)
        per_model["examples"] = _hex(rng, 64)
        per_model["dataset"] = _hex(rng, 64)
    if index == 0:
        per_model["prompt"] = rng.randint(1, 6)
        per_model["prompt_sha"] = _hex(rng, 64)
    elif not patch and rng.random() < 0.4:
        per_model["prompt"] += 1
        per_model["prompt_sha"] = _hex(rng, 64)
    if index == 0 or rng.random() < 0.15:
        per_model["image"] = _hex(rng, 64)
    if index == 0:
        per_model["created"] = EPOCH + timedelta(days=rng.randint(0, 60), minutes=rng.randint(0, 600))
    else:
        per_model["created"] += timedelta(days=rng.randint(12, 40), minutes=rng.randint(-120, 120))
    created: datetime = per_model["created"]
    strategy = per_model["strategy"]
    scheme = per_model["scheme"]
    bucket = f"{scheme}://acme-llm-artifacts/{name}"
    # Latency stays within +-4% of the model's baseline, so any candidate is < 1.2 x any stable.
    latency = per_model["latency"] * rng.uniform(0.96, 1.04)
    quarter = f"{created.year}-q{(created.month - 1) // 3 + 1}"

    kind = "MAJOR: new tokenizer and config" if major_bump else (
        "PATCH: image and parameter fixes" if version.split(".")[2] != "0" else "MINOR: new weights, same base")
    lines = [
        RELEASE_SCHEMA,
        f"# {name} {version}: {fam.kind} model on {fam.base.split('/')[1]}. {kind}." if index else
        f"# {name} {version}: the first {fam.kind} release of {name}, on {fam.base.split('/')[1]}.",
        "# Immutable once merged: cut a new version instead of editing (reconciler release new).",
        f"model: {name}",
        f'version: "{version}"',
        f"revision: {_hex(rng, 12)}",
        f"description: Fine-tune on {quarter} {fam.prompt} data for the {name.split('-', 1)[0]} team.",
        "",
        "bundle:",
    ]
    _artifact(lines, "weights", f"{bucket}/{version}/{fam.weights_file}", per_model["weights"], fam.weights_bytes)
    _artifact(lines, "tokenizer", f"{bucket}/{version}/tokenizer.json", per_model["tokenizer"])
    _artifact(lines, "config", f"{bucket}/{version}/config.json", per_model["config"])
    _artifact(lines, "system_prompt", f"{bucket}/prompts/{fam.prompt}-v{per_model['prompt']}.txt",
              per_model["prompt_sha"])
    if fam.few_shot:
        _artifact(lines, "few_shot_examples", f"{bucket}/prompts/{fam.prompt}-examples-v{per_model['prompt']}.jsonl",
                  per_model["examples"])
    lines += [
        "  generation:",
        f"    temperature: {_num(fam.temperature, 2)}",
        f"    top_p: {_num(fam.top_p, 2)}",
        f"    max_tokens: {fam.max_tokens}",
    ]
    if fam.stop:
        lines.append(f"    stop: {_quoted_list(fam.stop)}")
    lines.append("  safety:")
    if fam.classifier:
        _artifact(lines, "classifier", f"hf://meta-llama/Llama-Guard-3-1B@{per_model['guard']}/model.safetensors",
                  per_model["guard_sha"], indent="    ")
    lines += [
        f"    max_toxicity_score: {_num(0.8 if fam.kind == 'code' else 0.4, 1)}",
        f"    blocked_categories: [{', '.join(fam.blocked)}]",
        "    pii_redaction: true",
        "  routing:",
        f"    max_input_tokens: {fam.max_input_tokens}",
        f"    max_concurrent_requests: {fam.concurrency}",
        f"    request_timeout: {fam.timeout}",
        "  serving:",
        f"    image: {REGISTRY}/vllm-openai@sha256:{per_model['image']}",
        f"    gpus: {fam.gpus}",
        f"    gpu_type: {model.pool.gpu_type}",
        "",
        "lineage:",
        "  base_model:",
        f"    name: {fam.base}",
        f"    source: hf://{fam.base}",
        f"    revision: {per_model['base_revision']}",
        f"    architecture: {fam.architecture}",
        "  dataset:",
        f"    name: {name}-{fam.prompt}",
        f'    version: "{quarter}-r{index + 1}"',
        f"    sha256: {per_model['dataset']}",
        f"    size_bytes: {rng.randint(1_000, 25_000) * 1_048_576}",
        f"    uri: s3://acme-llm-datasets/{name}/{quarter}-r{index + 1}/",
        "  hyperparameters:",
    ]
    if fam.gpus >= 2:
        lines += ["    method: lora", f"    lora_rank: {rng.choice((16, 32, 64))}"]
    else:
        lines.append("    method: full")
    lines += [
        f"    learning_rate: {rng.choice(('1.0e-5', '2.0e-5', '5.0e-6'))}",
        f"    epochs: {rng.randint(1, 3)}",
        f"    batch_size: {rng.choice((32, 64, 128))}",
        "  training:",
        "    cluster: train-us-east-1",
        "    gpu_type: nvidia-h100-80gb",
        f"    gpu_count: {rng.choice((8, 16, 32, 64))}",
        f"    job_id: ft-{name[:20].rstrip('-')}-{created:%Y%m%d-%H%M}",
        f'  parent_version: "{parent}"' if parent else f"  parent_version: null  # the first release of {name} kept in git",
        f"  created_by: {per_model['author']}@{DOMAIN}",
        f"  created_at: {_ts(created)}",
        "  approvals:",
    ]
    approved = created
    for who, role in rng.sample(APPROVERS, rng.choice((2, 2, 3))):
        approved += timedelta(hours=rng.randint(2, 30), minutes=rng.randint(0, 59))
        lines += [f"    - by: {who}@{DOMAIN}", f"      at: {_ts(approved)}", f"      role: {role}"]
    lines += [
        "",
        "evaluation:",
        f"  toxicity: {_num(rng.uniform(0.001, 0.03), 3)}",
    ]
    if index:
        lines.append(f"  win_rate_vs_current: {_num(rng.uniform(0.52, 0.68), 2)}")
    lines += [
        f"  latency_p99_ms: {int(latency)}",
        "  adversarial_pass_rate: 1.0",
        "  benchmarks:",
        *(f"    {bench}: {_num(rng.uniform(low, high), 3)}" for bench, low, high in fam.benchmarks),
        "",
        "rollout:",
    ]
    if strategy == "canary" and per_model["explicit"]:
        lines.append("  strategy: canary")
        _explicit_canary(lines, fam, latency)
        lines.append("  standby_window: 72h")
    else:
        lines.append(f"  strategy: {strategy}  # stages, triggers and windows: the defaults in docs/formats.md")
        if strategy == "blue-green":
            lines.append("  standby_window: 24h")
    lines += ["  notify:", "    - kind: slack",
              f"      url: https://hooks.slack.com/services/T0000/B0000/{name}-releases"]
    if per_model["pager"]:
        lines += ["    - kind: webhook", f"      url: https://oncall.{DOMAIN}/hooks/sluice"]
    return "\n".join(lines) + "\n", ReleaseInfo(name, version, created, approved, strategy)


# --- environment files -------------------------------------------------------------------------------

def _environment_text(rng: random.Random, env: str, region: str, protected: bool, models: list[ModelInfo],
                      seed: int) -> str:
    deployments: list[list[str]] = []
    nodes: dict[str, int] = {}  # pool -> nodes for every live version
    steady: dict[str, int] = {}  # pool -> nodes for stables only
    for model in models:
        rels = model.releases
        lag = rng.choice((1, 1, 2)) if protected else rng.choice((0, 0, 1))
        top = max(len(rels) - 1 - lag, 0)
        has_candidate = top >= 1 and rng.random() < (0.35 if protected else 0.65)
        stable = top - 1 if has_candidate else top
        has_standby = stable >= 1 and rng.random() < (0.6 if protected else 0.3)
        pool = model.pool
        low, high = model.family.replicas
        replicas = rng.randint(low + (1 if protected else 0), high + (1 if protected else 0))
        per_version = ceil(replicas / (pool.gpus_per_node // model.family.gpus))
        live = 1 + has_candidate + has_standby
        nodes[pool.name] = nodes.get(pool.name, 0) + per_version * live
        steady[pool.name] = steady.get(pool.name, 0) + per_version
        entry = [f"  {model.name}:", f'    stable: "{rels[stable].version}"']
        if has_candidate:
            cand = rels[top]
            stage = rng.randrange(STAGE_COUNT[cand.strategy])
            started = cand.approved_at + timedelta(hours=rng.randint(1, 96), minutes=rng.randint(0, 59))
            entry += [f'    candidate: "{cand.version}"',
                      f"    stage: {stage}",
                      f"    stage_started_at: {_ts(started)}"]
        if has_standby:
            entry.append(f'    standby: "{rels[stable - 1].version}"      # previous stable, kept warm for rollback')
        entry += [f"    pool: {pool.name}", f"    replicas: {replicas}"]
        deployments.append(entry)

    used = [p for p in POOLS.values() if p.name in nodes] or [POOLS["a100"]]
    state = "Protected: every live release needs two approvals from the list below." if protected else \
        "Not protected: candidates meet internal traffic here first."
    lines = [
        ENVIRONMENT_SCHEMA,
        f"# {env}: {len(models)} models in {region}. {state}",
        f"# Synthetic fleet written by bench/fleet.py (seed {seed}).",
        "cluster:",
        "  provider: aws-eks",
        f"  region: {region}",
        f"  name: llm-{env}",
        f'  kubernetes_version: "{rng.choice(("1.32", "1.33"))}"',
        "namespace: llm-serving",
        "",
        "gpu_pools:",
    ]
    for pool in used:
        need = nodes.get(pool.name, 0)
        max_nodes = max(need + rng.randint(0, 2), 1)
        lines += [
            f"  - name: {pool.name}",
            f"    instance_type: {pool.instance_type}   # {pool.note}",
            f"    gpu_type: {pool.gpu_type}",
            f"    gpus_per_node: {pool.gpus_per_node}",
            f"    min_nodes: {min(steady.get(pool.name, 0), max_nodes)}",
            f"    max_nodes: {max_nodes}" + (f"                   # stable + candidate + standby need {need}"
                                             if need else ""),
        ]
    host = f"llm.{DOMAIN}" if env == "prod" else f"llm.{env}.{DOMAIN}"
    lines += [
        "",
        "istio:",
        "  gateway: istio-system/llm-gateway",
        f"  hosts: [{host}]",
        "",
        "metrics:",
        "  prometheus_url: http://prometheus.monitoring.svc:9090",
        "  window: 5m",
        "  max_staleness: 2m",
    ]
    if protected:
        lines += [
            "  queries:",
            "    # Production's evaluator runs in its own namespace and labels series by workload.",
            "    quality_score:",
            '      query: avg by (app, version) (avg_over_time(sluice_eval_quality_score{namespace="$namespace"}'
            "[$window]))",
            "      labels: {app: app, version: version}",
            "      unit: score",
            "      description: online evaluator's judged answer quality, 0..1",
        ]
    else:
        lines.append("  # queries: the default catalog (docs/formats.md#metrics); add or override entries here.")
    lines += ["", "policy:"]
    if protected:
        lines += ["  protected: true", "  required_approvals: 2", "  allowed_approvers:",
                  *(f"    - {who}@{DOMAIN}" for who, _ in APPROVERS),
                  "  predeployment:",
                  "    max_toxicity: 0.04",
                  "    min_win_rate: 0.5"]
    else:
        lines.append("  protected: false")
    lines += ["", "models:"]
    for entry in deployments:
        lines += entry
    return "\n".join(lines) + "\n"


# --- entry points ------------------------------------------------------------------------------------

def generate_fleet(out: Path | str, models: int = 100, versions: int = 10, environments: int = 10,
                   seed: int = 0) -> Fleet:
    """Write the fleet under `out` (created if needed; existing files of the same names are replaced)."""
    if models < 1 or versions < 1 or environments < 0:
        raise ValueError("need at least one model and one version, and zero or more environments")
    start = time.perf_counter()
    root = Path(out)
    rng = random.Random(seed)
    written = 0
    plan: list[ModelInfo] = []
    for name, family in _model_names(rng, models):
        model = ModelInfo(name, family)
        per_model = {
            "versions": _versions(rng, versions),
            "strategy": rng.choice(family.strategies),
            "scheme": rng.choice(("s3", "s3", "gs")),
            "latency": rng.uniform(*family.latency_ms),
            "base_revision": _hex(rng, 40),
            "guard": _hex(rng, 40),
            "guard_sha": _hex(rng, 64),
            "author": rng.choice(AUTHORS),
            "explicit": rng.random() < 0.3,
            "pager": rng.random() < 0.5,
        }
        folder = root / "releases" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(versions):
            text, info = _release_text(rng, model, i, per_model)
            model.releases.append(info)
            data = text.encode()
            (folder / f"{info.version}.yaml").write_bytes(data)
            written += len(data)
        plan.append(model)
    env_dir = root / "environments"
    env_dir.mkdir(parents=True, exist_ok=True)
    for env, region, protected in _environment_names(environments):
        data = _environment_text(rng, env, region, protected, plan, seed).encode()
        (env_dir / f"{env}.yaml").write_bytes(data)
        written += len(data)
    return Fleet(root, models, versions, environments, models * versions, environments, written,
                 time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write releases/ and environments/ into")
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--environments", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        fleet = generate_fleet(args.out, args.models, args.versions, args.environments, args.seed)
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {fleet.release_files} release files and {fleet.environment_files} environment files "
          f"({fleet.bytes_written / 1e6:.1f} MB) to {fleet.root} in {fleet.seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
