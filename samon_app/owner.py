"""The user's name typed in the sidebar: cleaned and checked by the library's one rule for owner
names (``samon_core.runs.owners.normalize_owner_name``: the app must not accept a name the job
service refuses, nor refuse one it accepts, nor see two people where the service sees one)."""

from __future__ import annotations

from samon_core.runs.owners import GUEST_OWNER, BadOwnerName, normalize_owner_name

DEFAULT_OWNER = GUEST_OWNER  # whoever typed no name: browses only (app_pages/identity.py)


def clean_owner(text: str | None) -> tuple[str, str | None]:
    """(owner name in normal form, error or None): empty -> 'guest'; ``Alice `` -> 'alice'; an
    invalid name -> 'guest' and the service's reason."""
    raw = text if isinstance(text, str) else ""
    if not raw.strip():
        return DEFAULT_OWNER, None
    try:
        return normalize_owner_name(raw), None
    except BadOwnerName as exc:
        return DEFAULT_OWNER, (
            f"Not a valid user name: {exc.reason}. Until it is corrected you browse as 'guest' "
            "and cannot launch, cancel or delete runs."
        )
