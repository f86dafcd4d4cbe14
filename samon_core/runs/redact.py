"""Connection URLs for humans: the one place that hides a URL's password before it is shown.

A database URL (``postgresql+psycopg://lab:PASSWORD@db/samon``) reaches messages, reprs,
settings errors and worker logs that students see. ``display_url`` renders it the way
SQLAlchemy's ``URL.render_as_string(hide_password=True)`` does,
``postgresql+psycopg://lab:***@db/samon``, for any
``scheme://user:password@host...`` URL; ``redact`` removes a URL's secrets from other text (an
exception message of a client library that quotes a piece of a malformed URL).

Why not only a URL parser: the URLs that leak are often the malformed ones (a mistyped scheme, a
password with an unescaped ``/`` or ``@``, which SQLAlchemy and the drivers accept up to the last
``@``), and a parser then puts the password into the path or refuses the URL. So the user info is
taken as everything before the last ``@`` after the scheme: hiding too much is the safe mistake.
"""

from __future__ import annotations

from urllib.parse import unquote

from pydantic import SecretStr

MASK = "***"
# Query parameters whose value is a secret (drivers read ?password=, ?sslkey=...).
_SECRET_QUERY_KEYS = ("pass", "pwd", "secret", "token", "auth", "key")
# Characters at which a parser may cut a password that holds them unescaped: the pieces between
# them may show up alone in its error message ("Port could not be cast to integer value as 'ab'").
_CUTS = "/?#@:[]"
_MIN_PIECE = 3  # shorter pieces say nothing about the password and would mangle any text


def _plain(url: str | SecretStr | None) -> str:
    if url is None:
        return ""
    return url.get_secret_value() if isinstance(url, SecretStr) else str(url)


def _parts(url: str) -> tuple[str, str | None, str]:
    """``(scheme://, user info or None, the rest)``; without ``://`` the prefix is empty."""
    scheme, sep, after = url.partition("://")
    prefix, after = (scheme + sep, after) if sep else ("", url)
    at = after.rfind("@")
    if at < 0:
        return prefix, None, after
    return prefix, after[:at], after[at + 1:]


def _query_secrets(rest: str) -> list[tuple[str, str]]:
    """``(key, value)`` of the query parameters of ``rest`` whose value is a secret."""
    _, _, query = rest.partition("?")
    out = []
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        if eq and value and any(k in key.lower() for k in _SECRET_QUERY_KEYS):
            out.append((key, value.partition("#")[0]))
    return out


def display_url(url: str | SecretStr | None) -> str:
    """``url`` with its password (or, without a ``user:`` part, its whole user info) and any
    secret query value replaced by ``***``: ``postgresql://lab:***@db/samon``,
    ``postgresql://***@db/samon`` (user info without a password is hidden whole). Text
    without user info or secrets comes back unchanged."""
    prefix, userinfo, rest = _parts(_plain(url))
    for key, value in _query_secrets(rest):
        rest = rest.replace(f"{key}={value}", f"{key}={MASK}")
    if userinfo is None:
        return prefix + rest
    user, colon, _password = userinfo.partition(":")
    return f"{prefix}{user + ':' + MASK if colon else MASK}@{rest}"


def url_secrets(url: str | SecretStr | None) -> list[str]:
    """The texts of ``url`` that must never be shown: its password (as written and decoded),
    the pieces a parser may have cut it into, secret query values; longest first."""
    _prefix, userinfo, rest = _parts(_plain(url))
    found: set[str] = set()
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        found.add(password if colon else userinfo)
    found.update(value for _key, value in _query_secrets(rest))
    for secret in list(found):
        for form in (secret, unquote(secret)):
            found.add(form)
            piece = form
            for cut in _CUTS:
                piece = piece.replace(cut, "\0")
            found.update(p for p in piece.split("\0") if len(p) >= _MIN_PIECE)
    return sorted((s for s in found if s), key=len, reverse=True)


def redact(text: str, *urls: str | SecretStr | None) -> str:
    """``text`` with every secret of ``urls`` (``url_secrets``) replaced by ``***``."""
    for url in urls:
        for secret in url_secrets(url):
            text = text.replace(secret, MASK)
    return text
