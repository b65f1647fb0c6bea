"""Who may delete what: record owners, administrators and the delete check.

Conventions every store follows (runs, datasets, models, jobs):

- A record's ``owner`` is a string made by :func:`owner_id` from the signed-in user (their
  e-mail address, lower-cased; ``sub:<subject>`` when the identity provider gives no e-mail),
  or ``None`` when nobody was signed in: sign-in off, or written by a script or CLI (a script
  may name its owner with ``DASHBOARD_OWNER``, see :func:`script_owner`).
- The acting user is ``None`` when sign-in is not configured: the dashboard is then open (on
  127.0.0.1 by default) and everybody who reaches it may do everything, as before sign-in
  existed.
- With sign-in on, deleting needs the record's owner or an administrator. Records without an
  owner (made before sign-in was on, or by a script) can be deleted by administrators only.
- Administrators are listed in ``DASHBOARD_ADMINS`` (comma or space separated e-mail
  addresses); the dashboard adds ``admins`` from the ``[dashboard]`` table of
  ``.streamlit/secrets.toml`` (``dashboard/auth.py``).

Owner strings come from the identity provider or from store rows: treat them as untrusted
text (escape them before they reach HTML).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.config import Env, get_settings
from services.errors import UserFacingError

_SEPARATORS = re.compile(r"[,\s]+")
_SUBJECT_PREFIX = "sub:"
_MAX_OWNER_CHARS = 320  # the longest valid e-mail address is 254; leave room for sub: ids


class NotAllowed(UserFacingError):
    """The signed-in user may not do this (not the owner and not an administrator)."""


def _clean(text: object) -> str | None:
    """``text`` as a printable one-line string, or None when it is empty or not a string."""
    if not isinstance(text, str):
        return None
    cleaned = "".join(ch for ch in text.strip() if ch.isprintable())
    return cleaned[:_MAX_OWNER_CHARS] or None


def owner_id(email: object = None, sub: object = None) -> str | None:
    """The owner string for an identity: the lower-cased e-mail, else ``sub:<subject>``."""
    address = _clean(email)
    if address:
        return address.lower()
    subject = _clean(sub)
    return f"{_SUBJECT_PREFIX}{subject}" if subject else None


def normalize_owner(owner: object) -> str | None:
    """An owner string as stored or configured, in the form :func:`owner_id` makes
    (e-mail addresses compare case-insensitively, subjects exactly)."""
    text = _clean(owner)
    if text and text.startswith(_SUBJECT_PREFIX):
        return text
    return owner_id(text)


def script_owner() -> str | None:
    """The owner that scripts and CLIs record (``DASHBOARD_OWNER``), None when unset."""
    return normalize_owner(get_settings().owner)


def parse_admins(values: str | Iterable[object] | None) -> frozenset[str]:
    """Administrator owner strings from ``"a@x, b@y"`` or a list of addresses."""
    if values is None:
        return frozenset()
    items = _SEPARATORS.split(values) if isinstance(values, str) else values
    return frozenset(owner for owner in map(normalize_owner, items) if owner)


def admins_from_env() -> frozenset[str]:
    return parse_admins(get_settings().admins)


def is_admin(user: str | None, admins: Iterable[str]) -> bool:
    user = normalize_owner(user)
    return user is not None and user in {normalize_owner(admin) for admin in admins}


def can_delete(owner: str | None, user: str | None, admins: Iterable[str] = ()) -> bool:
    """Whether ``user`` may delete a record owned by ``owner``.

    ``user`` None means sign-in is off: everybody may. Otherwise the owner or an administrator
    may; records without an owner need an administrator."""
    if user is None:
        return True
    if is_admin(user, admins):
        return True
    owner, user = normalize_owner(owner), normalize_owner(user)
    return owner is not None and owner == user


def owner_label(owner: str | None) -> str:
    """How an owner is shown to people (plain text; escape before putting it into HTML)."""
    return _clean(owner) or "nobody (made with sign-in off, or by a script)"


def check_can_delete(owner: str | None, user: str | None, admins: Iterable[str] = (),
                     what: str = "this item") -> None:
    """Raise :class:`NotAllowed` with a clear message unless :func:`can_delete` allows it."""
    if can_delete(owner, user, admins):
        return
    who = f"its owner ({owner_label(owner)}) or an administrator" if owner else "an administrator"
    raise NotAllowed(
        f"Only {who} can delete {what}; you are signed in as {user}. "
        f"Ask an administrator (listed in {Env.ADMINS}) if it should go."
    )


@dataclass(frozen=True)
class Actor:
    """The person acting in one session: what stores record and check.

    Pages get it from ``dashboard.auth.current_actor()``; services take it as a parameter."""

    user: str | None = None
    """The owner string of the signed-in user; None when sign-in is off."""
    admins: frozenset[str] = field(default_factory=frozenset)

    @property
    def owner(self) -> str | None:
        """What a new record stores as its owner."""
        return self.user

    @property
    def is_admin(self) -> bool:
        return is_admin(self.user, self.admins)

    def can_delete(self, owner: str | None) -> bool:
        return can_delete(owner, self.user, self.admins)

    def check_can_delete(self, owner: str | None, what: str = "this item") -> None:
        check_can_delete(owner, self.user, self.admins, what)


OPEN = Actor()
"""The actor when sign-in is off (and for scripts and CLIs): allowed everything."""
