"""Dashboard passwords: which ones are refused, and how they are hashed and checked.

Hashes are Argon2id (argon2-cffi) in PHC form, `$argon2id$v=19$m=...,t=...,p=...$salt$hash`: each hash
carries its own parameters, so raising the cost in settings applies to new passwords while older hashes,
and the scrypt hashes (`scrypt$n$r$p$salt$hash`) made before, still verify. The common passwords refused
are zxcvbn's list of the 30,000 most frequent ones in leaked sets, shipped inside that package (no download).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from leadradar.config import PasswordConfig

_TRAILING = string.digits + string.punctuation + " "


def _hasher(cfg: PasswordConfig) -> PasswordHasher:
    return PasswordHasher(
        time_cost=cfg.argon2_time_cost,
        memory_cost=cfg.argon2_memory_kib,
        parallelism=cfg.argon2_parallelism,
        hash_len=32,
        salt_len=16,
    )


def hash_password(password: str, cfg: PasswordConfig) -> str:
    """The Argon2id hash of `password` with its parameters and salt: all a later check needs."""
    return _hasher(cfg).hash(password)


def check_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`, an Argon2 hash or a scrypt hash of before (constant time)."""
    if stored.startswith("$argon2"):
        try:
            return PasswordHasher().verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    if stored.startswith("scrypt$"):
        return _check_scrypt(password, stored)
    return False


def unknown_user_hash(cfg: PasswordConfig) -> str:
    """A hash to check against when the name is unknown, so that a miss costs what a wrong password costs."""
    return _dummy(cfg.argon2_time_cost, cfg.argon2_memory_kib, cfg.argon2_parallelism)


@cache
def _dummy(time_cost: int, memory_kib: int, parallelism: int) -> str:
    cfg = PasswordConfig(argon2_time_cost=time_cost, argon2_memory_kib=memory_kib, argon2_parallelism=parallelism)
    return hash_password("not a password of anyone", cfg)


def weakness(password: str, username: str, cfg: PasswordConfig) -> str | None:
    """Why `password` is refused for `username`, or None when it may be used."""
    if len(password or "") < cfg.min_length:
        return f"a password needs at least {cfg.min_length} characters"
    if not cfg.refuse_common:
        return None
    lowered = password.lower()
    if lowered in common_passwords() or lowered.rstrip(_TRAILING) in common_passwords():
        return "that password is one of the most common ones (or one with digits or symbols added); choose another"
    if len(username) >= 3 and username.lower() in lowered:
        return "a password must not hold the user name"
    return None


@cache
def common_passwords() -> frozenset[str]:
    """zxcvbn's 30,000 most common passwords, lower case."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def _check_scrypt(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        n_, r_ = int(n), int(r)
        again = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=n_, r=r_, p=int(p), dklen=32, maxmem=256 * n_ * r_ + 2**20
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(again, _unb64(digest))


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
