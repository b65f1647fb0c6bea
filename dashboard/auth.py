"""Sign-in: Streamlit's OpenID Connect login (``st.login`` / ``st.user`` / ``st.logout``).

Sign-in is on when ``.streamlit/secrets.toml`` has an ``[auth]`` table (see
``.streamlit/secrets.toml.example``); then :func:`require_login` (called by ``app.py`` before
the navigation) shows only a sign-in screen to anonymous visitors, so no page runs for them.
Without an ``[auth]`` table the dashboard is open, as it is on localhost by default.

A secrets file that exists but cannot be read keeps the dashboard closed: a typo must not open
a lab server to everybody.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import streamlit as st

from dashboard.widgets import md
from services import access

EXAMPLE = ".streamlit/secrets.toml.example"


class _Unreadable(Exception):
    """A secrets file exists but Streamlit cannot parse it."""


def _secrets_file_exists() -> bool:
    return any(Path(os.path.expanduser(path)).exists() for path in st.get_option("secrets.files"))


def _secret_table(name: str) -> Mapping | None:
    """``st.secrets[name]`` when it is a table; None when absent or there are no secrets."""
    try:
        value = st.secrets.get(name)
    except FileNotFoundError:  # Streamlit's "no secrets" / "cannot parse secrets" error
        if _secrets_file_exists():
            raise _Unreadable from None
        return None
    return value if isinstance(value, Mapping) else None


def auth_configured() -> bool:
    """Whether sign-in is required (an ``[auth]`` table exists, or the secrets are unreadable)."""
    try:
        return _secret_table("auth") is not None
    except _Unreadable:
        return True


def _is_logged_in() -> bool:
    return bool(st.user.get("is_logged_in"))


def current_user() -> str | None:
    """The signed-in user's owner string (see ``services.access``); None when sign-in is off
    or nobody is signed in."""
    if not auth_configured() or not _is_logged_in():
        return None
    return access.owner_id(st.user.get("email"), st.user.get("sub"))


def display_name() -> str | None:
    """The signed-in user's name as the identity provider gives it (plain text)."""
    user = current_user()
    if user is None:
        return None
    return str(st.user.get("name") or st.user.get("email") or user)


def admins() -> frozenset[str]:
    """Administrators: ``DASHBOARD_ADMINS`` plus ``admins`` in the secrets' ``[dashboard]`` table."""
    try:
        table = _secret_table("dashboard") or {}
    except _Unreadable:
        table = {}
    return access.admins_from_env() | access.parse_admins(table.get("admins"))


def current_actor() -> access.Actor:
    """Who acts in this session, for stores to record as owner and to check deletes against."""
    return access.Actor(current_user(), admins())


def _providers(auth_table: Mapping) -> list[str | None]:
    """Named providers (``[auth.<name>]`` tables), else the default one (None)."""
    named = [name for name, value in auth_table.items() if isinstance(value, Mapping)]
    return named or [None]


def _sign_in_screen() -> None:
    st.title(":material/biotech: Pathology DL dashboard")
    st.info("This dashboard asks you to sign in. Nothing is shown before you do.", icon=":material/lock:")
    try:
        auth_table = _secret_table("auth") or {}
    except _Unreadable:
        st.error("The dashboard's secrets file (.streamlit/secrets.toml) cannot be read, so sign-in cannot "
                 f"start. An administrator must fix it (see {EXAMPLE}).")
        return
    for provider in _providers(auth_table):
        label = f"Log in with {provider}" if provider else "Log in"
        if st.button(label, icon=":material/login:", type="primary", key=f"login-{provider}"):
            try:
                st.login(provider)
            except st.errors.StreamlitAuthError as error:
                st.error(f"Sign-in is configured but incomplete: {error} An administrator must fix "
                         f".streamlit/secrets.toml (see {EXAMPLE}).")


def require_login() -> None:
    """Stop the script with a sign-in screen unless sign-in is off or the user is signed in."""
    if not auth_configured() or _is_logged_in():
        return
    _sign_in_screen()
    st.stop()


def show_account() -> None:
    """The signed-in user and a Log out button, in the sidebar (nothing when sign-in is off)."""
    name = display_name()
    if name is None:
        return
    with st.sidebar:
        st.caption(f"Signed in as **{md(name)}**")
        if st.button("Log out", icon=":material/logout:", key="logout"):
            st.logout()

