"""The thin CLI: parse arguments, call a command module, map errors to exit codes in one place.

Command modules are imported only when their verb runs, so `reconciler --help` stays fast.
"""
