"""samon_app."""
