"""The user's name typed in the sidebar: cleaned and checked (runs are stored under it; only its
owner may cancel or delete a run)."""

from __future__ import annotations

import re

# fullmatch, not match with "$": "$" also matches before a trailing newline.
_OWNER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@ -]{0,39}")
DEFAULT_OWNER = "guest"


def clean_owner(text: str | None) -> tuple[str, str | None]:
    """(owner name, error or None): surrounding blanks removed, empty -> 'guest'; a name must be
    1-40 letters, digits, blanks or ``_ . @ -``, starting with a letter or digit."""
    name = (text if isinstance(text, str) else "").strip()
    if not name:
        return DEFAULT_OWNER, None
    if not _OWNER_RE.fullmatch(name):
        return DEFAULT_OWNER, (
            "A user name is 1-40 letters, digits, blanks or _ . @ - (starting with a letter or "
            "digit); until it is corrected you browse as 'guest' and cannot launch, cancel or "
            "delete runs."
        )
    return name, None

