"""Owner keys: the secret that proves a student is the owner of a name, and its digest.

The app has no accounts. A student who registers a name gets an owner key once (a capability:
whoever holds it acts as that owner, e.g. through the link ``?owner=NAME&key=KEY``); the store
keeps only its digest (ownerkeys.py), so a copy of the run folder gives away no key.

Why a plain SHA-256 and no salt or key stretching: those protect *passwords*, which people choose
from a small space an attacker can enumerate. An owner key is 128 random bits from ``secrets``;
nobody can enumerate 2**128 candidates, salted or not, so a fast hash is as safe as a slow one
here. Comparisons use ``hmac.compare_digest`` so that the time a check takes does not tell how
much of a guessed digest was right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_BYTES = 16  # 128 random bits; token_urlsafe makes 22 characters of them
KEY_MIN_CHARS = 16
KEY_MAX_CHARS = 64
_KEY_RE = re.compile(rf"[A-Za-z0-9_-]{{{KEY_MIN_CHARS},{KEY_MAX_CHARS}}}")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


class BadKey(ValueError):
    """Text that cannot be an owner key (the message never quotes it: it may be a real key with a
    typo)."""


def new_key() -> str:
    """A fresh owner key: 16 random bytes, URL-safe base64 (22 characters), never starting with
    '-': the command line would read ``--owner-key -abc...`` as an option (1 key in 64)."""
    while (key := secrets.token_urlsafe(KEY_BYTES)).startswith("-"):
        pass
    return key


def check_key(key: object) -> str:
    """``key`` if it has the shape of an owner key (URL-safe base64, 16-64 characters), else
    ``BadKey``."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise BadKey(f"an owner key is {KEY_MIN_CHARS}-{KEY_MAX_CHARS} URL-safe characters "
                     "(letters, digits, '-' and '_'); check that it was copied whole")
    return key


def digest(key: str) -> str:
    """SHA-256 of the key, hex (what the store keeps instead of the key; see the module
    docstring for why no salt is needed)."""
    return hashlib.sha256(check_key(key).encode("ascii")).hexdigest()


def is_digest(text: object) -> bool:
    """Whether ``text`` looks like a digest made by ``digest`` (a damaged key file does not)."""
    return isinstance(text, str) and _DIGEST_RE.fullmatch(text) is not None


def matches(key: str, stored_digest: str) -> bool:
    """Whether ``key`` is the key of ``stored_digest``, compared in constant time."""
    return hmac.compare_digest(digest(key), stored_digest)
