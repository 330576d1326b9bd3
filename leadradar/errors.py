"""The errors a person can fix: each names the file, column or value and what to do, in one line.

The CLI prints a `UserError` as that one line and exits 2; any other exception is our bug and keeps
its traceback. This module is the bottom layer: every other one may raise these, it imports none of ours.
"""

from __future__ import annotations


class UserError(Exception):
    """Input that cannot be used as it is; the message says which input and what to do about it."""


class InputError(UserError, ValueError):
    """An input file or table that is missing, unreadable, or whose columns do not fit its contract."""


class BadValueError(UserError, ValueError):
    """An option or time value outside what is allowed (an unknown engine, a naive time, ...)."""


class NotFoundError(UserError, LookupError):
    """Something the command needs does not exist yet: a champion, a previous champion, scores."""


class TooLittleDataError(UserError, ValueError):
    """The data (or the window `--until` leaves of it) is too short to build or split a training set."""


class ConfigError(UserError, ValueError):
    """The settings file or environment cannot be turned into settings."""


class ResourceError(UserError, RuntimeError):
    """The work does not fit the memory or disk it was given; the message names the setting or folder to change."""
