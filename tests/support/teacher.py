"""The teacher token of the tests and the settings that carry it (no environment, no samon.toml:
``load_settings(environ={})``)."""

from __future__ import annotations

from samon_core.service.settings import Settings, load_settings

TEACHER_TOKEN = "the-teacher-token-of-the-tests"


def teacher_settings(**overrides) -> Settings:
    """Default settings with ``TEACHER_TOKEN`` as the teacher token, plus ``overrides``."""
    return load_settings(environ={}, **{"teacher_token": TEACHER_TOKEN, **overrides})
