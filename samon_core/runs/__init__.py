"""samon_core.runs."""
