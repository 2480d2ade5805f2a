"""The pure core: models, rules and decisions. No I/O, no clock: time and metrics are arguments."""
