"""Secrets handed to people and machines (API tokens, invitation links), and how they are stored: hashed only.

Tokens carry 240 bits of randomness, so a single SHA-256 is enough to make a leaked table useless; a slow password
hash would only add latency to every API request.
"""

from __future__ import annotations

import hashlib
import secrets
import string

TOKEN_PREFIX_MARK = "cn"  # noqa: S105 (a public marker that makes leaked tokens recognizable, not a secret)
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_token_secret() -> tuple[str, str]:
    """Return (prefix, full token). The prefix is shown in lists so people can tell their tokens apart."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    return prefix, f"{TOKEN_PREFIX_MARK}_{prefix}_{secrets.token_urlsafe(30)}"


def new_link_secret() -> str:
    return secrets.token_urlsafe(32)
