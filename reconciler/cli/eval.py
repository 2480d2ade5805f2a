"""`reconciler eval MODEL VERSION --endpoint URL [--stable-endpoint URL] [--judge URL --judge-model NAME]
--classifier URL [--classifier-model NAME] [--*-api-key-env NAME] [--suite PATH] [--samples N]
[--concurrency N] [--dry-run] [--base REF] [PATH]`:
the offline evaluation of a release (docs/evaluation.md).

Runs the suite's pinned prompts against the candidate's OpenAI-compatible endpoint (and stable's,
the judge's and the classifier's), writes the artifact `evaluations/<model>/<version>.json` and
sets the release's `evaluation` numbers and `evaluation.artifact` from it. Exit 0 once written
(or shown, with --dry-run); 1 when the suite or a dataset is not as pinned; 2 for bad arguments or
a release already on the base branch (immutable); 5 when calls failed (nothing written).
"""

from __future__ import annotations

import argparse

from ..core.evaluation_suite import DEFAULT_SUITE
from . import exit_codes
from .main import UsageError, add_repo_argument


#: --...-api-key-env flags: the key is read from the environment variable the flag names, never from argv.
KEY_FLAGS = (("--api-key-env", "the candidate's"), ("--stable-api-key-env", "stable's"),
             ("--judge-api-key-env", "the judge's"), ("--classifier-api-key-env", "the classifier's"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("version", metavar="VERSION")
    parser.add_argument("--endpoint", required=True, metavar="URL", help="the candidate's OpenAI-compatible server")
    parser.add_argument("--model-name", metavar="NAME", help="the candidate's served model name (vLLM's "
                        "--served-model-name; default: the server's own)")
    parser.add_argument("--stable-endpoint", metavar="URL",
                        help="the current stable's server: win rate and stable's latency p99 need it")
    parser.add_argument("--stable-model-name", metavar="NAME")
    parser.add_argument("--judge", metavar="URL", help="a judge model's server, for the win rate")
    parser.add_argument("--judge-model", metavar="NAME")
    parser.add_argument("--classifier", metavar="URL", help="a Llama-Guard-style classifier's server, for toxicity")
    parser.add_argument("--classifier-model", metavar="NAME",
                        help="default: the release's bundle.safety.classifier (hf://org/name@rev/... -> org/name)")
    for flag, whose in KEY_FLAGS:
        parser.add_argument(flag, metavar="NAME", help=f"the environment variable holding {whose} API key, sent as "
                                                       "Authorization: Bearer (never pass a key itself on the command "
                                                       "line)")
    parser.add_argument("--suite", default=DEFAULT_SUITE, metavar="PATH",
                        help="the suite file, relative to the repository (default: %(default)s)")
    parser.add_argument("--samples", type=_positive, metavar="N", help="use the first N prompts of each dataset")
    parser.add_argument("--concurrency", type=_positive, default=4, metavar="N",
                        help="calls in flight at once (default: %(default)s)")
    parser.add_argument("--timeout", default="90s", metavar="DURATION", help="per call (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=2, metavar="N", help="on 429, 5xx and connection errors")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", dest="dry_run", action="store_false", default=False,
                      help="write the artifact and the release's evaluation (the default)")
    mode.add_argument("--dry-run", dest="dry_run", action="store_true", help="measure and show; write nothing")
    parser.add_argument("--base", default="main", metavar="REF",
                        help="the branch releases are merged into: a release there is immutable (default: main)")
    add_repo_argument(parser)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys
    from datetime import datetime, timezone

    from ..adapters.offline_evaluation import EvaluationRefused, load_suite, release_with_evaluation, write_evaluation
    from ..core.evaluation_artifact import artifact_path, canonical_json, sha256_of
    from ..core.evaluation_suite import missing_purposes
    from ..core.release import EvaluationArtifactRef
    from ..core.repository import release_path
    from ..evaluator.offline import run_suite

    _check_identity(args.model, args.version)
    root, release_rel = args.path, release_path(args.model, args.version)
    if not (root / release_rel).is_file():
        raise UsageError(f"no release file {release_rel} in {root}: write it first (`reconciler release new "
                         f"{args.model} --bump ...`)")
    if not args.dry_run:
        _refuse_released(root, args.base, release_rel)
    endpoints = _endpoints(args, _release_classifier(root / release_rel))
    try:
        files = load_suite(root, args.suite, args.samples)
    except EvaluationRefused as err:
        print(f"reconciler eval: {err}\nnothing was written", file=sys.stderr)
        return exit_codes.FINDINGS
    missing = missing_purposes(files.suite)
    if missing:
        raise UsageError(f"{args.suite} has no dataset for {', '.join(missing)}: every release number needs one")
    prompts = {p: items for p, items in files.prompts.items() if p != "win_rate" or endpoints.stable is not None}
    started = datetime.now(timezone.utc)
    outcome = asyncio.run(run_suite(prompts, endpoints, concurrency=args.concurrency, timeout=_seconds(args.timeout),
                                    retries=args.retries, seed=f"{args.model}/{args.version}"))
    finished = datetime.now(timezone.utc)
    if outcome.errors:
        print(_failed(outcome), file=sys.stderr)
        return exit_codes.EVALUATION_FAILED
    artifact = _artifact(args, files, outcome, endpoints, started, finished)
    text = canonical_json(artifact)
    rel = artifact_path(args.model, args.version)
    reference = EvaluationArtifactRef(uri=rel, sha256=sha256_of(text.encode()))
    numbers = artifact.results.model_dump(mode="json")
    print(_summary(artifact, reference, args.dry_run))
    if not args.dry_run:
        release_text = release_with_evaluation((root / release_rel).read_text(encoding="utf-8"), numbers, reference)
        write_evaluation(root, rel, text, release_rel, release_text)
        print(f"wrote {rel} and set evaluation in {release_rel}: commit both, then run `reconciler validate`")
    return exit_codes.OK


def _check_identity(model: str, version: str) -> None:
    """MODEL and VERSION name a file: they must be what a release's `model` and `version` may be."""
    import re

    from ..core.types import DNS_LABEL, SEMVER

    if not re.fullmatch(DNS_LABEL, model):
        raise UsageError(f"{model!r} is not a model name (a DNS-1123 label, e.g. chat-assistant)")
    if not re.fullmatch(SEMVER, version):
        raise UsageError(f"{version!r} is not a version: write MAJOR.MINOR.PATCH, e.g. 1.4.0")


def _refuse_released(root, base: str, release_rel: str) -> None:
    from ..adapters.base_ref import BaseRefError, load_base

    try:
        released = load_base(root, base)
    except BaseRefError as err:
        raise UsageError(f"{err}; pass --base REF (the branch releases merge into), or --dry-run") from None
    if release_rel in released.files_at_tip or release_rel in released.history.files:
        raise UsageError(f"{release_rel} is released on {base}, and a released file never changes: its evaluation "
                         f"stays as merged. Evaluate a new version instead (`reconciler release new MODEL --bump "
                         "patch`), or measure without writing (--dry-run)")


def _release_classifier(path) -> str | None:
    """The model name of the release's safety classifier, as the online evaluator's deployment
    derives it (`classifier_model`); None when the release names none on the Hub or does not parse
    yet (`validate` says why), and the classifier endpoint's own model is asked."""
    from pydantic import ValidationError

    from ..adapters.yaml_source import parse_yaml
    from ..core.evaluator_manifests import classifier_model
    from ..core.release import Release

    doc = parse_yaml(path.read_bytes())
    try:
        return classifier_model(Release.model_validate(doc.data)) if not doc.errors else None
    except ValidationError:
        return None


def _endpoints(args: argparse.Namespace, default_classifier: str | None):
    import os

    from ..core.urls import redact_url
    from ..evaluator.offline import Endpoints
    from ..evaluator.openai_api import Endpoint, bearer_from_env

    def endpoint(flag: str, url: str | None, name: str | None, key_flag: str):
        if url is None:
            return None
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"{flag} {redact_url(url, '')}: write an http(s) URL, e.g. http://127.0.0.1:8000")
        key_env = getattr(args, key_flag.lstrip("-").replace("-", "_"))
        if key_env is None:
            return Endpoint(url, name)
        headers = bearer_from_env(key_env, os.environ)
        if headers is None:
            raise UsageError(f"{key_flag} {key_env}: the environment variable {key_env} is unset or empty; fix: "
                             f"export {key_env} with the API key of {redact_url(url, '')} (the flag names the "
                             "variable, never the key)")
        return Endpoint(url, name, headers)

    if args.judge and not args.stable_endpoint:
        raise UsageError("--judge compares the candidate with stable: pass --stable-endpoint too")
    if args.stable_endpoint and not args.judge:
        raise UsageError("--stable-endpoint needs --judge URL (--judge-model NAME): the win rate is the judge's")
    if not args.classifier:
        raise UsageError("--classifier URL is needed: toxicity is the classifier's share of flagged answers")
    return Endpoints(endpoint("--endpoint", args.endpoint, args.model_name, "--api-key-env"),
                     endpoint("--stable-endpoint", args.stable_endpoint, args.stable_model_name, "--stable-api-key-env"),
                     endpoint("--judge", args.judge, args.judge_model, "--judge-api-key-env"),
                     endpoint("--classifier", args.classifier, args.classifier_model or default_classifier,
                              "--classifier-api-key-env"))


def _seconds(text: str) -> float:
    from ..core.types import explained, parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError as err:
        raise UsageError(f"--timeout: {explained(err)}") from None


def _artifact(args, files, outcome, endpoints, started, finished):
    from .. import __version__
    from ..core.evaluation_artifact import EvaluationArtifact, EndpointRecord, Evaluator
    from ..core.evaluation_suite import artifact_counts, measured_results
    from ..core.urls import redact_url

    records = {role: EndpointRecord(url=redact_url(e.url, ""), model=e.model)
               for role, e in vars(endpoints).items() if e is not None}
    return EvaluationArtifact(
        model=args.model, version=args.version,
        results=measured_results(outcome.counts, outcome.candidate_latencies_s, outcome.stable_latencies_s),
        counts=artifact_counts(outcome.counts),
        datasets=files.datasets, endpoints=records,
        evaluator=Evaluator(sluice_version=__version__, judge_model=args.judge_model,
                            classifier_model=endpoints.classifier.model),
        started_at=started, finished_at=finished)


def _summary(artifact, reference, dry_run: bool) -> str:
    r = artifact.results
    stable = f" (stable {r.stable_latency_p99_ms:g} ms)" if r.stable_latency_p99_ms is not None else ""
    win = "null (no --stable-endpoint)" if r.win_rate_vs_current is None else f"{r.win_rate_vs_current:g}"
    lines = [f"{artifact.model} {artifact.version}: offline evaluation" + (" (dry run: nothing written)" if dry_run
                                                                           else ""),
             f"  toxicity               {r.toxicity:g}",
             f"  win_rate_vs_current    {win}",
             f"  latency_p99_ms         {r.latency_p99_ms:g}{stable}",
             f"  adversarial_pass_rate  {r.adversarial_pass_rate:g}"]
    for purpose, counts in sorted(artifact.counts.items()):
        lines.append(f"  {purpose + ':':<22} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    lines.append(f"  artifact {reference.uri} sha256 {reference.sha256}")
    return "\n".join(lines)


def _failed(outcome) -> str:
    counts = ", ".join(f"{purpose} {c['errors']}" for purpose, c in sorted(outcome.counts.items()) if c["errors"])
    return (f"reconciler eval: {outcome.errors} call(s) failed ({counts}); first: {outcome.first_error}. A number over "
            "part of a pinned suite is not the suite's number, so nothing was written; fix: check the endpoints "
            "(--timeout, --concurrency) and run again")
