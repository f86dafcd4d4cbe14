"""The user's name typed in the sidebar: cleaned and checked against the library's rule for owner
names (``samon_core.runs.owners.OWNER_NAME_RE``: the app must not accept a name the job service
refuses, nor refuse one it accepts)."""

from __future__ import annotations

from samon_core.runs.owners import GUEST_OWNER, OWNER_NAME_RE

DEFAULT_OWNER = GUEST_OWNER  # whoever typed no name: browses only (app_pages/identity.py)


def clean_owner(text: str | None) -> tuple[str, str | None]:
    """(owner name, error or None): surrounding blanks removed, empty -> 'guest'; a name must be
    1-40 letters, digits, blanks or ``_ . @ -``, starting with a letter or digit."""
    name = (text if isinstance(text, str) else "").strip()
    if not name:
        return DEFAULT_OWNER, None
    if not OWNER_NAME_RE.fullmatch(name):
        return DEFAULT_OWNER, (
            "A user name is 1-40 letters, digits, blanks or _ . @ - (starting with a letter or "
            "digit); until it is corrected you browse as 'guest' and cannot launch, cancel or "
            "delete runs."
        )
    return name, None
