"""Access: owners, administrators and the delete check (services.access), and the sign-in gate
(dashboard.auth) in Streamlit's AppTest. The real browser flow is in test_e2e_login.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.secrets import secrets_singleton
from streamlit.testing.v1 import AppTest

from services import access
from services.config import Env
from services.errors import UserFacingError

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
AUTH = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "a-test-cookie-secret-32-chars-xx",
        "client_id": "dashboard", "client_secret": "secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
HOME_TITLE = "Applied deep learning"


# --- services.access ------------------------------------------------------------------------

def test_owner_id_prefers_the_lower_cased_email_then_the_subject():
    assert access.owner_id("  Alice@Lab.ORG ", "abc") == "alice@lab.org"
    assert access.owner_id(None, "Sub-42") == "sub:Sub-42"
    assert access.owner_id("", "") is None
    assert access.owner_id("evil\nname@x.org") == "evilname@x.org"  # no line breaks in owner strings


def test_with_sign_in_off_everybody_may_delete():
    assert access.can_delete("alice@lab.org", None)
    assert access.can_delete(None, None)
    access.OPEN.check_can_delete("alice@lab.org", "run 7")


def test_owner_may_delete_others_may_not():
    assert access.can_delete("Alice@Lab.org", "alice@lab.org")
    assert not access.can_delete("alice@lab.org", "bob@lab.org")
    assert not access.can_delete(None, "bob@lab.org")  # unowned: administrators only
    assert not access.can_delete("", "")  # a blank identity owns nothing
    assert access.can_delete("sub:AbC", "sub:AbC")
    assert not access.can_delete("sub:AbC", "sub:abc")  # subjects compare exactly


def test_administrators_may_delete_anything():
    admins = access.parse_admins("PI@lab.org, it@lab.org  boss@lab.org")
    assert admins == {"pi@lab.org", "it@lab.org", "boss@lab.org"}
    assert access.can_delete("alice@lab.org", "pi@lab.org", admins)
    assert access.can_delete(None, "boss@lab.org", admins)
    assert access.parse_admins(["a@x.org", 3, None, " "]) == {"a@x.org"}


def test_refusal_is_a_clear_user_facing_message():
    actor = access.Actor("bob@lab.org", frozenset({"pi@lab.org"}))
    with pytest.raises(access.NotAllowed) as refused:
        actor.check_can_delete("alice@lab.org", "run 'baseline'")
    assert isinstance(refused.value, UserFacingError)
    message = str(refused.value)
    assert "alice@lab.org" in message and "bob@lab.org" in message and "run 'baseline'" in message
    with pytest.raises(access.NotAllowed, match="an administrator"):
        actor.check_can_delete(None, "dataset 'x'")


def test_admins_and_script_owner_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(Env.ADMINS, "A@x.org,b@y.org")
    monkeypatch.setenv(Env.OWNER, "Carol@Lab.org")
    assert access.admins_from_env() == {"a@x.org", "b@y.org"}
    assert access.script_owner() == "carol@lab.org"
    monkeypatch.delenv(Env.OWNER)
    assert access.script_owner() is None


# --- dashboard.auth: the sign-in gate ---------------------------------------------------------

def _app(user: dict | None = None, **secrets) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    app.secrets.update(secrets)
    if user is not None:
        app.user = user
    return app.run()


def _texts(app: AppTest) -> str:
    return " ".join(element.value for kind in (app.title, app.caption, app.markdown, app.info, app.warning)
                    for element in kind)


def test_without_auth_config_the_app_is_open_and_says_so(data_root, secrets_file):
    app = _app()
    assert not app.exception
    assert HOME_TITLE in app.title[0].value
    assert "Sign-in is off" in _texts(app)
    assert not [button for button in app.button if button.label in ("Log in", "Log out")]


def test_anonymous_visitor_sees_only_the_sign_in_screen(data_root):
    app = _app({"is_logged_in": False}, auth=AUTH)
    assert not app.exception
    assert [button.label for button in app.button] == ["Log in"]
    assert HOME_TITLE not in _texts(app)
    assert not app.metric  # the home page did not run


def test_one_button_per_named_provider(data_root):
    providers = {"redirect_uri": AUTH["redirect_uri"], "cookie_secret": AUTH["cookie_secret"],
                 "keycloak": {"client_id": "a"}, "entra": {"client_id": "b"}}
    app = _app({"is_logged_in": False}, auth=providers)
    assert sorted(button.label for button in app.button) == ["Log in with entra", "Log in with keycloak"]


def test_signed_in_user_sees_the_pages_and_who_they_are(data_root, monkeypatch):
    monkeypatch.delenv(Env.ADMINS, raising=False)
    app = _app({"is_logged_in": True, "email": "Alice@Lab.org", "name": "Alice <b>Example</b>"}, auth=AUTH)
    assert not app.exception
    assert HOME_TITLE in app.title[0].value
    texts = _texts(app)
    assert r"Signed in as **Alice \<b\>Example\</b\>**" in texts  # shown literally, not as markup
    assert "You are an administrator" not in texts
    assert [button.label for button in app.button] == ["Run the real-tissue demo", "Log out"]  # Home's own, then the session's


def test_administrators_from_secrets_are_told_so(data_root):
    app = _app({"is_logged_in": True, "email": "pi@lab.org", "name": "PI"}, auth=AUTH,
               dashboard={"admins": ["PI@lab.org"]})
    assert "You are an administrator" in _texts(app)


@pytest.fixture
def secrets_file(tmp_path):
    """Streamlit reads only this test's ``secrets.toml`` (absent until the test writes it), not a
    developer's ``.streamlit/secrets.toml``."""
    path = tmp_path / "secrets.toml"
    saved = st.get_option("secrets.files")
    st.config.set_option("secrets.files", [str(path)])
    secrets_singleton._reset()
    yield path
    st.config.set_option("secrets.files", saved)
    secrets_singleton._reset()


def test_an_unreadable_secrets_file_keeps_the_dashboard_closed(data_root, secrets_file):
    secrets_file.write_text("[auth\nredirect_uri = \n")  # not TOML
    app = _app({"is_logged_in": False})
    assert not app.exception
    assert HOME_TITLE not in _texts(app)
    assert "cannot be read" in app.error[0].value
    assert not app.button
