"""Sluice's own evaluator: compares a candidate's answers with stable's, online and offline.

Online (`python -m reconciler.evaluator --config FILE`, console script `sluice-evaluator`): Istio
mirrors a sample of a model's user traffic to this service while a candidate is in a canary or
shadow stage; each admitted sample goes to stable and to candidate through the OpenAI-compatible
API, the answers are compared, optionally scored by a safety classifier and a judge model, and
only counts and scores leave, as Prometheus series (docs/evaluator.md).

Modules: `openai_api` (the one HTTP client to models: timeouts, retries with backoff), `compare`
(pure comparisons of two answers), `safety` (a Llama-Guard-style classifier over the OpenAI
API), `pairwise` (a judge model's A/B preference, order randomised), `sample` (one sample: the
calls and their outcome), `config`, `exporter` (the series), `http_server` (a small asyncio
HTTP/1.1 server on h11) and `service` (intake, bounded queue, workers). The offline
`reconciler eval` reuses `openai_api`, `compare`, `safety` and `pairwise`.

Nothing here is imported by the `reconciler` CLI at start-up: httpx, rapidfuzz and
prometheus_client load only when the evaluator or `reconciler eval` runs.
"""
