"""samon_core.train."""
