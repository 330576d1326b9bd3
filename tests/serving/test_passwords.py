"""Dashboard passwords: common ones are refused, the rules come from settings, hashes are Argon2id and old
scrypt hashes still let their owners in."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from leadradar.config import PasswordConfig
from leadradar.serving.users import USERS, UserStore

# Made by the scrypt code before Argon2 (n=2^14, r=8, p=1) for the password below; an account may still hold one.
OLD_SCRYPT_HASH = "scrypt$16384$8$1$b2xkLXNhbHQtMTZieXRlcw$eWdOzaNMtWqksjbnqOyqzBnTTAbBpwiwPfVccNYfte8"
OLD_PASSWORD = "an old password 42"
# A cheap Argon2 cost keeps the tests quick; the defaults are checked on their own below.
FAST = PasswordConfig(argon2_time_cost=1, argon2_memory_kib=8 * 1024, argon2_parallelism=1)


@pytest.fixture
def users(tmp_path) -> UserStore:
    return UserStore(f"sqlite:///{tmp_path / 'users.db'}", FAST)


COMMON = ["password123", "qwertyuiop", "1q2w3e4r5t", "Iloveyou12", "football!!!!", "woaini1314"]


@pytest.mark.parametrize("password", COMMON)
def test_a_common_password_is_refused_also_with_digits_or_symbols_added(users, password):
    with pytest.raises(ValueError, match="most common"):
        users.create("t01", "anna", password)
    assert users.get("anna") is None


def test_a_common_password_is_refused_when_changing_it_too(users):
    users.create("t01", "anna", "violet kettle on the roof")
    with pytest.raises(ValueError, match="most common"):
        users.set_password("anna", "1234567890")
    assert users.verify("anna", "violet kettle on the roof") is not None


def test_a_password_holding_the_user_name_is_refused(users):
    with pytest.raises(ValueError, match="user name"):
        users.create("t01", "zhang.wei", "Zhang.Wei-2026-spring")


def test_the_minimum_length_comes_from_settings(tmp_path, users):
    assert users.create("t01", "anna", "violet kettle").username == "anna"
    strict = UserStore(f"sqlite:///{tmp_path / 'strict.db'}", FAST.model_copy(update={"min_length": 16}))
    with pytest.raises(ValueError, match="at least 16 characters"):
        strict.create("t01", "anna", "violet kettle")


def test_the_deny_list_can_be_turned_off_for_a_company_with_its_own_rules(tmp_path):
    lax = UserStore(f"sqlite:///{tmp_path / 'lax.db'}", FAST.model_copy(update={"refuse_common": False}))
    assert lax.create("t01", "anna", "password123").username == "anna"


def test_new_hashes_are_argon2id_with_their_parameters_and_the_default_cost_is_above_the_old_scrypt(users):
    users.create("t01", "anna", "violet kettle on the roof")
    with users.engine.connect() as conn:
        stored = conn.execute(sa.select(USERS.c.password_hash).where(USERS.c.username == "anna")).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$") and "violet" not in stored
    defaults = PasswordConfig()
    assert defaults.argon2_memory_kib * 1024 > 128 * 8 * 2**14  # scrypt n=2^14, r=8 used 16 MiB
    assert users.verify("anna", "violet kettle on the roof") is not None
    assert users.verify("anna", "violet kettle on the roof!") is None


def test_an_account_with_an_old_scrypt_hash_still_signs_in(users):
    users.create("t01", "old-timer", "violet kettle on the roof")
    with users.engine.begin() as conn:
        conn.execute(USERS.update().where(USERS.c.username == "old-timer").values(password_hash=OLD_SCRYPT_HASH))
    assert users.verify("old-timer", OLD_PASSWORD).username == "old-timer"
    assert users.verify("old-timer", OLD_PASSWORD + "x") is None
    assert users.verify("nobody", OLD_PASSWORD) is None
