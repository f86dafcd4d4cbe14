"""samon_core.service."""
