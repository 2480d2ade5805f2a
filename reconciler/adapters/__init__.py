"""Adapters at the edges: files, git, Prometheus, notifications. The core never imports these."""
