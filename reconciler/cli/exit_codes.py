"""Exit codes, in one place. CI scripts and pre-commit hooks depend on these numbers."""

OK = 0  # the command ran; no errors (warnings allowed)
FINDINGS = 1  # the repository has errors (validate, status), or generated files are stale (schema --check)
USAGE = 2  # bad arguments, a path that is not a repository, or an I/O error
METRICS_UNREACHABLE = 3  # reconcile ran, but Prometheus could not be read for a rollout in flight: held unjudged
LOCKED = 4  # another reconciler command held the checkout's lock (.git/sluice.lock) for all of --lock-timeout
EVALUATION_FAILED = 5  # eval: calls to an endpoint failed, so the suite was not measured whole; nothing written
