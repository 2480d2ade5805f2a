"""The main job, played end to end: a canary of the example repository's chat-assistant 1.3.0 in
prod, in a temporary git repository, against a local Prometheus holding a synthetic history.

`python -m reconciler.demo [--out DIR] [--recorded]` runs `reconciler start`, reconcile passes at
successive instants (`--at`) that advance the stages, a breach that rolls the candidate back with
its incident record, and ends with `reconciler report`'s HTML page. Without a Prometheus binary
(or with `--recorded`) the same passes read the answers a real Prometheus gave on the same
history (`recorded.json`), and reach the same decisions.

Modules: `prometheus` (the launcher and the synthetic-history generator, shared with the tests),
`scenario` (the timeline and the series), `recording` (recording and replaying Prometheus
answers), `player` (the commands, in order).
"""
