"""Credentials out of everything shown: camera URLs are parsed, not pattern-matched.

A camera URL carries secrets in its user-info (``rtsp://user:pass@host/``) and in its
query (``?user=..&password=..``, ``token=``). ``redact_url`` parses one URL; ``scrub``
removes a known URL's secrets from any text (say an exception message that quotes the
URL), wherever they appear; ``redact`` does its best on text with unknown URLs in it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
# Query parameters whose values are secrets (compared lower-case).
SECRET_QUERY_KEYS = frozenset({
    "user", "username", "usr", "login", "password", "passwd", "pass", "pwd", "pw", "token", "access_token",
    "auth", "authorization", "key", "apikey", "api_key", "secret", "sig", "signature", "session", "sessionid",
})
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_MIN_SCRUBBED = 3  # shorter secrets are masked inside the URL only, not everywhere in a text


def _parts(url: str) -> tuple[str, str | None, str, str | None, str | None] | None:
    """(scheme://, user-info or None, host and path, query or None, fragment or None); None if not a URL."""
    match = _SCHEME.match(url)
    if match is None:
        return None
    rest = url[match.end():]
    rest, hash_, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    # The user-info ends at the LAST '@' before the query: passwords may hold '@', '/' or
    # spaces, which cameras accept unencoded and which end it early for a URL parser.
    userinfo, at, location = rest.rpartition("@")
    return (match.group(), userinfo if at else None, location if at else rest,
            query if question else None, fragment if hash_ else None)


def _secret_query(query: str) -> list[tuple[str, str]]:
    """(name, value) of the query's secret parameters."""
    pairs = (part.partition("=") for part in re.split(r"[&;]", query))
    return [(name, value) for name, eq, value in pairs if eq and unquote(name).lower() in SECRET_QUERY_KEYS]


def redact_url(url: str) -> str:
    """``url`` with its user-info and secret query values replaced by ``***``."""
    parts = _parts(url)
    if parts is None:
        return url
    scheme, userinfo, location, query, fragment = parts
    text = scheme
    if userinfo is not None:
        text += (f"{MASK}:{MASK}" if ":" in userinfo else MASK) + "@"
    text += location
    if query is not None:
        secret = {name for name, _ in _secret_query(query)}
        text += "?" + "&".join(
            f"{name}={MASK}" if eq and name in secret else name + eq + value
            for name, eq, value in (part.partition("=") for part in re.split(r"[&;]", query))
        )
    if fragment is not None:
        text += "#" + fragment
    return text


def url_host(url: str) -> str | None:
    """The host name (or address) of ``url``, without user-info, port or brackets; None if not a URL."""
    parts = _parts(url)
    if parts is None:
        return None
    authority = parts[2].split("/", 1)[0]
    if authority.startswith("["):  # an IPv6 address: [::1]:554
        return authority[1:].partition("]")[0]
    return authority.rpartition(":")[0] if ":" in authority else authority


def url_secrets(url: str) -> set[str]:
    """Every secret string in ``url``: user-info, user, password and secret query values,
    as written and percent-decoded."""
    parts = _parts(url)
    if parts is None:
        return set()
    _, userinfo, _, query, _ = parts
    found = []
    if userinfo:
        user, _, password = userinfo.partition(":")
        found += [userinfo, user, password]
    if query:
        found += [value for _, value in _secret_query(query)]
    return {text for raw in found if raw for text in (raw, unquote(raw))}


def scrub(text: object, url: str) -> str:
    """``text`` with ``url`` (and each of its secrets, wherever it appears) redacted."""
    text = str(text).replace(url, redact_url(url))
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        if len(secret) >= _MIN_SCRUBBED:
            text = text.replace(secret, MASK)
    return redact(text)


def redact(text: object) -> str:
    """``text`` with every URL in it redacted; a URL runs to the next white space (a
    password with spaces is only caught by ``scrub``, which knows the URL)."""
    def one(match: re.Match[str]) -> str:
        url = match.group().rstrip(".,:;)]}")  # punctuation of the sentence around it
        return redact_url(url) + match.group()[len(url):]

    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+", one, str(text))
