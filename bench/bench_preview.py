"""How long does `reconciler preview` take for a fleet of 100 models, and where does the time go?

    python bench/bench_preview.py                       # from the repository root
    python -m bench.bench_preview --models 100 --versions 10 --runs 3

Generates a synthetic fleet (bench/fleet.py; default 100 models x 10 versions, one environment,
`staging`) in a temporary directory, checks that `reconciler validate` finds 0 errors in it, copies
`infra/` and `policies/` (the working tree's) into it, and measures in this process, as
`reconciler.adapters.offline_preview.offline_preview` runs them:

  program    the Pulumi program under the SDK's mocks (`run_offline`, the offline engine);
  pack       the policy pack started as the engine starts it (`PolicyPack`): start-up (spawn to the
             first GetAnalyzerInfo answer), `analyze` (Analyze per custom resource, then
             AnalyzeStack) and stop.

`analyze` is split into transport and policies by measuring, in this process and on the same
resources, what runs inside the pack without the process and the wire:

  policies   each of the pack's policies (`reconciler/adapters/policy_pack.build_policies`, the
             core registry behind them) called with `ResourceValidationArgs` / `StackValidationArgs`
             holding the very proxies the pack's SDK builds (made untimed beforehand): Sluice's
             policy code, adapter included, and nothing else;
  transport  = analyze - policies: the client's serialization (wire_value + protobuf Struct,
             measured alone), the pack SDK's deserialization (MessageToDict + deserialize +
             unknown-checking proxies, once per policy per resource: measured as pulumi_policy's
             servicer called in-process minus the policies), and gRPC with the protobuf wire
             format (the rest).

The core rules alone (`reconciler.core.policy.evaluate` on plain dicts) are timed too, for
reference. What runs inside the pack is timed here with this process's objects frozen out of the
cyclic collector's reach (`gc.freeze`): the pack's own heap is small, this one holds the fleet. Then the CLI end to end: `python -m reconciler preview -e ENV FLEET` as a subprocess
(interpreter start-up, imports and the repository check `validate` runs included), with the
program and pack times the CLI prints on stderr.

Every figure is the median of --runs runs after one untimed warm-up (which also checks that the
in-process policies find what the pack finds). Goals: the CLI end to end under 10 s, and the pack's
share (start-up + analyze + stop, as the CLI times it) under a third of it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/bench_preview.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.bench_program import peak_rss_kb  # noqa: E402
from bench.bench_validate import Series, fail, validated_fleet, fmt_mb, run  # noqa: E402
from bench.fleet import generate_fleet  # noqa: E402

TOTAL_GOAL_S = 10.0
PACK_SHARE_GOAL = 1 / 3
PROJECT = "sluice"
CLI_TIMINGS = re.compile(r"reconciler preview: program (?P<program>\d+\.\d+) s, "
                         r"(?:base program \d+\.\d+ s, )?policy pack after the program (?P<pack>\d+\.\d+) s")


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def _timed(call: Any, frozen: bool = False) -> tuple[float, Any]:
    """Wall time of `call()`. `frozen`: for work that runs inside the pack, whose process holds little
    besides the request; this one holds the fleet, the recorded resources and the SDK's proxies,
    which the cyclic collector would otherwise rescan, so they are frozen out of its reach."""
    gc.collect()
    if frozen:
        gc.freeze()
    try:
        start = time.perf_counter()
        value = call()
        return time.perf_counter() - start, value
    finally:
        if frozen:
            gc.unfreeze()


@dataclass
class Figures:
    series: dict[str, Series] = field(default_factory=dict)

    def add(self, label: str, seconds: float) -> None:
        self.series.setdefault(label, Series(label)).times.append(seconds)

    def median(self, label: str) -> float:
        return self.series[label].median


# --- what the pack receives, and what runs inside it --------------------------------------------------

class Wire:
    """The requests `PolicyPack.analyze` sends, and the pack SDK's view of them (built untimed)."""

    def __init__(self, resources: list) -> None:
        from google.protobuf import json_format
        from pulumi_policy.deserialize import deserialize_properties
        from pulumi_policy.policy import (
            PolicyCustomTimeouts,
            PolicyResource,
            PolicyResourceOptions,
            ResourceValidationArgs,
            StackValidationArgs,
        )
        from pulumi_policy.proxy import unknown_checking_proxy

        self.custom = [r for r in resources if r.custom]
        self.requests, self.stack_request = serialize(self.custom)
        opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
        proxied = [unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(q.properties)))
                   for q in self.requests]
        self.resource_args = [ResourceValidationArgs(r.type, props, r.urn, r.name, opts, None)
                              for r, props in zip(self.custom, proxied)]
        self.stack_args = StackValidationArgs([PolicyResource(r.type, props, r.urn, r.name, opts, None, None, [], {})
                                               for r, props in zip(self.custom, proxied)])


def serialize(custom: list) -> tuple[list, Any]:
    """What `PolicyPack.analyze` builds before the first call: one Struct per resource, two messages each."""
    from google.protobuf import struct_pb2
    from pulumi.runtime.proto import analyzer_pb2

    from reconciler.adapters.policy_client import wire_value

    requests, stack = [], []
    for r in custom:
        properties = struct_pb2.Struct()
        properties.update(wire_value(r.inputs))
        requests.append(analyzer_pb2.AnalyzeRequest(type=r.type, properties=properties, urn=r.urn, name=r.name))
        stack.append(analyzer_pb2.AnalyzerResource(type=r.type, properties=properties, urn=r.urn, name=r.name,
                                                   parent=r.parent))
    return requests, analyzer_pb2.AnalyzeStackRequest(resources=stack)


def run_policies(policies: list, wire: Wire, per_policy: dict[str, float] | None = None) -> Counter:
    """Each policy's validate callback over the prepared args, as the pack's servicer calls them."""
    from pulumi_policy import ResourceValidationPolicy

    found: Counter = Counter()
    for policy in policies:
        def report(message: str, urn: str | None = None, name: str = policy.name) -> None:
            found[name] += 1

        start = time.perf_counter()
        if isinstance(policy, ResourceValidationPolicy):
            for args in wire.resource_args:
                policy.validate(args, report)
        else:
            policy.validate(wire.stack_args, report)
        if per_policy is not None:
            per_policy[policy.name] = per_policy.get(policy.name, 0.0) + time.perf_counter() - start
    return found


def run_servicer(servicer: Any, wire: Wire) -> Counter:
    """pulumi_policy's own servicer, called in-process: its deserialization plus the policies, no gRPC."""
    found: Counter = Counter()
    for request in wire.requests:
        found.update(d.policyName for d in servicer.Analyze(request, None).diagnostics)
    found.update(d.policyName for d in servicer.AnalyzeStack(wire.stack_request, None).diagnostics)
    return found


def run_core(custom: list) -> Counter:
    """The core rules alone on plain dicts (unknowns as the engine's sentinel), no adapter, no SDK."""
    from reconciler.adapters.policy_client import wire_value
    from reconciler.core.policy import PlannedResource, evaluate, violations

    planned = [PlannedResource(urn=r.urn, type=r.type, name=r.name, props=wire_value(r.inputs)) for r in custom]
    return Counter(v.rule.name for v in violations(evaluate(planned)))


def pack_run(pack_dir: Path, env: str, resources: list) -> tuple[dict[str, float], Counter]:
    from reconciler.adapters.policy_client import PolicyPack

    gc.collect()
    t0 = time.perf_counter()
    pack = PolicyPack(pack_dir, project=PROJECT, stack=env)
    try:
        pack.info()
        t1 = time.perf_counter()
        diagnostics = pack.analyze(resources)
        t2 = time.perf_counter()
    finally:
        pack.close()
    t3 = time.perf_counter()
    return {"start-up": t1 - t0, "analyze": t2 - t1, "stop": t3 - t2}, Counter(d.policy for d in diagnostics)


# --- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_preview", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions", type=int, default=10, help="release files per model (default: 10)")
    parser.add_argument("--environments", type=int, default=1, help="environments in the fleet (default: 1)")
    parser.add_argument("--environment", default="staging", help="the one previewed (default: staging)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement (default: 3)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="write the fleet to DIR and keep it")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("need at least one run")

    # The pack is a separate process started in the fleet's directory: it finds Sluice the way a
    # virtualenv with Sluice installed would, through the path (the CLI subprocess gets it from `run`).
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="sluice-bench-preview-") as tmp:
        return _bench(args, args.keep if args.keep else Path(tmp) / "fleet")


def _bench(args: argparse.Namespace, fleet_dir: Path) -> int:
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    from reconciler.adapters.offline_preview import run_offline
    from reconciler.adapters.policy_pack import PACK_NAME, build_policies

    started = time.perf_counter()
    env = args.environment
    fleet = generate_fleet(fleet_dir, args.models, args.versions, args.environments, args.seed)
    for folder in ("infra", "policies"):
        shutil.copytree(ROOT / folder, fleet_dir / folder, ignore=shutil.ignore_patterns("__pycache__"),
                        dirs_exist_ok=True)
    if not (fleet_dir / "environments" / f"{env}.yaml").is_file():
        known = ", ".join(sorted(p.stem for p in (fleet_dir / "environments").glob("*.yaml")))
        raise SystemExit(f"bench: the fleet has no environment {env!r} (it has: {known})")

    print(f"Sluice preview benchmark: {args.models} models x {args.versions} versions, {args.environments} "
          f"environment(s), previewing {env}, seed {args.seed}")
    print(f"fleet: {fleet.bytes_written / 1e6:.1f} MB written in {fleet.seconds:.2f} s to {fleet_dir}")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}; pulumi "
          f"{_version('pulumi')}, pulumi_policy {_version('pulumi_policy')}, grpcio {_version('grpcio')}, "
          f"protobuf {_version('protobuf')}")
    print(f"{args.runs} timed runs per measurement after one warm-up, medians\n")

    report, _ = validated_fleet(fleet_dir)
    if report is None:
        return 1

    policies = build_policies()
    resource_policies = sum(isinstance(p, ResourceValidationPolicy) for p in policies)
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "0.0.1", policies, EnforcementLevel.ADVISORY)
    cli = [sys.executable, "-m", "reconciler", "preview", "--environment", env, str(fleet_dir)]
    figures = Figures()
    per_policy: dict[str, float] = {}

    # Warm-up, untimed: imports and first-use caches; the checks that make the split meaningful.
    resources = run_offline(fleet_dir, env)
    wire = Wire(resources)
    custom = len(wire.custom)
    _, over_grpc = pack_run(fleet_dir / "policies", env, resources)
    in_process = run_policies(policies, wire)
    through_servicer = run_servicer(servicer, wire)
    if not (over_grpc == in_process == through_servicer):
        raise SystemExit(f"bench: the pack over gRPC found {dict(over_grpc)}, the policies in-process "
                         f"{dict(in_process)}, the servicer in-process {dict(through_servicer)}: not the same work")
    mandatory = {p.name for p in policies if p.enforcement_level == EnforcementLevel.MANDATORY}
    if any(over_grpc[name] for name in mandatory):
        raise SystemExit(f"bench: the fleet violates mandatory policies: {dict(over_grpc)}")
    warm = run(cli)
    if warm.returncode != 0 or not CLI_TIMINGS.search(warm.output):
        fail(f"`reconciler preview` exited {warm.returncode} on the generated fleet (expected 0)", warm.output)
        return 1
    core_found = run_core(wire.custom)
    rss_warm = peak_rss_kb()

    for _ in range(args.runs):
        seconds, records = _timed(lambda: run_offline(fleet_dir, env))
        if len(records) != len(resources):
            raise SystemExit(f"bench: the program registered {len(records)} resources, {len(resources)} before")
        figures.add("program", seconds)
        parts, _ = pack_run(fleet_dir / "policies", env, records)
        for label, value in parts.items():
            figures.add(label, value)
        del records
        figures.add("client serialization", _timed(lambda: serialize(wire.custom))[0])
        figures.add("servicer in-process", _timed(lambda: run_servicer(servicer, wire), frozen=True)[0])
        figures.add("policies", _timed(lambda: run_policies(policies, wire, per_policy), frozen=True)[0])
        figures.add("core rules", _timed(lambda: run_core(wire.custom), frozen=True)[0])
        child = run(cli)
        match = CLI_TIMINGS.search(child.output)
        if child.returncode != 0 or match is None:
            fail(f"`reconciler preview` exited {child.returncode}", child.output)
            return 1
        figures.add("cli", child.seconds)
        figures.add("cli program", float(match["program"]))
        figures.add("cli pack", float(match["pack"]))
    rss_end = peak_rss_kb()

    m = figures.median
    program = m("program")
    start_up, analyze, stop = m("start-up"), m("analyze"), m("stop")
    pack = start_up + analyze + stop
    policies_s = m("policies")
    transport = analyze - policies_s
    serialization = m("client serialization")
    sdk = m("servicer in-process") - policies_s
    wire_rest = transport - serialization - sdk
    total = program + pack
    deserializations = custom * len(policies)  # Analyze: per resource policy; AnalyzeStack: all, per stack policy

    def row(label: str, seconds: float, what: str, indent: bool = False) -> None:
        name = ("  " + label) if indent else label
        print(f"{name:<34}{seconds:>8.2f} s{100 * seconds / total:>6.0f}%   {what}")

    print(f"{env}: {len(resources)} resources ({custom} custom, sent to the pack; {len(resources) - custom} "
          f"components); pack of {len(policies)} policies ({resource_policies} resource, "
          f"{len(policies) - resource_policies} stack); warnings {dict(over_grpc) or 'none'}\n")
    print(f"{'in-process, as offline_preview runs it':<34}{'median':>10}{'share':>7}   how")
    row("program (offline engine)", program, "run_offline: load + desired state + registrations under mocks")
    row("pack", pack, "PolicyPack: start-up + analyze + stop")
    row("start-up", start_up, "spawn `python -m pulumi.policy`, imports, port, GetAnalyzerInfo", indent=True)
    row("transport", transport, "analyze - policies", indent=True)
    row("  client serialization", serialization, "wire_value + Struct.update + requests (measured alone)", indent=True)
    row("  SDK deserialization", sdk, f"servicer in-process - policies ({deserializations:,} MessageToDict + "
        "proxy)", indent=True)
    row("  gRPC and the rest", wire_rest, "transport - the two above", indent=True)
    row("policies", policies_s, "the pack's validate callbacks in-process, SDK proxies prepared", indent=True)
    row("stop", stop, "terminate the pack, wait", indent=True)
    row("total", total, "program + pack")
    print(f"\nanalyze over gRPC {analyze:.2f} s; pulumi_policy's servicer in-process {m('servicer in-process'):.2f} s; "
          f"core rules alone (plain dicts, no adapter) {m('core rules'):.2f} s")
    if deserializations:
        print(f"SDK deserialization per resource per policy: {1000 * sdk / deserializations:.3f} ms")

    print(f"\n{'policy (in-process, mean per run)':<40}{'time':>9}")
    for name, seconds in sorted(per_policy.items(), key=lambda item: -item[1]):
        print(f"{name:<40}{seconds / args.runs:>8.3f}s")

    cli_s, cli_program, cli_pack = m("cli"), m("cli program"), m("cli pack")
    rest = cli_s - cli_program - cli_pack
    print(f"\n{'end to end (subprocess)':<34}{'median':>10}{'share':>7}")
    for label, seconds, what in (
            ("reconciler preview", cli_s, " ".join(["python -m reconciler preview -e", env, "FLEET"])),
            ("program", cli_program, "the CLI's own timing (stderr)"),
            ("policy pack", cli_pack, "the CLI's own timing (stderr)"),
            ("the rest", rest, "interpreter, imports, the repository check, output")):
        print(f"{label:<34}{seconds:>8.2f} s{100 * seconds / cli_s:>6.0f}%   {what}")

    spread = max((max(s.times) - min(s.times)) / s.median for s in figures.series.values() if s.median > 0.05)
    print(f"\nlargest spread of a series over 0.05 s, (max - min) / median: {100 * spread:.0f}%")
    print(f"peak RSS of this process (ru_maxrss): {fmt_mb(rss_warm)} after the warm-up, {fmt_mb(rss_end)} at the end")
    share = cli_pack / cli_s
    ok_total, ok_share = cli_s < TOTAL_GOAL_S, share < PACK_SHARE_GOAL
    print(f"\n{'goal (medians)':<52}{'target':>10}{'measured':>10}   result")
    print(f"{'reconciler preview, end to end':<52}{'< 10 s':>10}{cli_s:>8.2f} s   {'PASS' if ok_total else 'MISS'}")
    print(f"{'policy pack share of it':<52}{'< 33%':>10}{100 * share:>9.0f}%   {'PASS' if ok_share else 'MISS'}")
    print(f"{'(in-process: pack / (program + pack))':<52}{'':>10}{100 * pack / total:>9.0f}%")
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s")

    if args.json:
        data = {
            "fleet": {"models": args.models, "versions": args.versions, "environments": args.environments,
                      "environment": env, "seed": args.seed, "bytes": fleet.bytes_written},
            "python": platform.python_version(), "runs": args.runs,
            "resources": len(resources), "custom": custom, "policies": len(policies),
            "series": {s.label: {"median_s": s.median, "min_s": s.min, "times_s": s.times}
                       for s in figures.series.values()},
            "split": {"program_s": program, "pack_s": pack, "start_up_s": start_up, "transport_s": transport,
                      "client_serialization_s": serialization, "sdk_deserialization_s": sdk,
                      "grpc_rest_s": wire_rest, "policies_s": policies_s, "stop_s": stop},
            "per_policy_s": {k: v / args.runs for k, v in per_policy.items()},
            "core_violations": dict(core_found),
            "goal": {"total_s": cli_s, "pack_share": share, "pass": ok_total and ok_share},
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 1 if (args.strict and not (ok_total and ok_share)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
