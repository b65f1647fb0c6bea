"""Real browser: OpenID Connect sign-in against a local mock provider on 127.0.0.1.

The dashboard runs with a secrets file of its own (``--secrets.files``), so the repository's
``.streamlit`` is never touched; the provider is ``oidc-provider-mock`` serving one predefined
user. An anonymous visitor sees only the sign-in screen (also on a page's own URL); after
signing in the pages are there and show who is signed in; logging out closes them again.
"""

from __future__ import annotations

import secrets
import threading

import pytest
import werkzeug.serving

from tests.conftest import StreamlitServer, wait_for_app

pytestmark = pytest.mark.e2e

USER_EMAIL = "alice@lab.example.org"
USER_NAME = "Alice Example"
HOME_TITLE = "Applied deep learning for the pathology lab"


@pytest.fixture(scope="module")
def oidc_provider():
    """The mock OpenID provider on 127.0.0.1 (a free port); yields its base URL."""
    import oidc_provider_mock

    app = oidc_provider_mock.app(user_claims=[
        oidc_provider_mock.User(sub=USER_EMAIL, claims={"email": USER_EMAIL, "name": USER_NAME})])
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def login_server(oidc_provider, tmp_path_factory, artifacts_dir):
    """``streamlit run dashboard/app.py`` with sign-in configured against the mock provider."""
    folder = tmp_path_factory.mktemp("login")
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "pathology-dashboard-test"\n'
        'client_secret = "test-secret"\n'
        f'server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"\n'
    )
    data_dir = folder / "data"
    data_dir.mkdir()
    server = StreamlitServer(data_dir, artifacts_dir / "streamlit-login-server.log",
                             extra_args=["--secrets.files", str(secrets_file)])
    yield server
    server.stop()


@pytest.fixture
def login_page(_browser, login_server):
    context = _browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def _assert_only_sign_in(page) -> None:
    page.get_by_role("button", name="Log in").wait_for()
    assert page.get_by_text(HOME_TITLE).count() == 0
    assert page.get_by_text("Training monitor").count() == 0  # no navigation, no page links
    assert page.get_by_text("Start here").count() == 0


def test_sign_in_protects_every_page_and_log_out_closes_them(login_page, login_server, artifacts_dir):
    page = login_page
    page.goto(login_server.url)
    wait_for_app(page)
    _assert_only_sign_in(page)
    page.screenshot(path=str(artifacts_dir / "login-anonymous.png"), full_page=True)

    page.goto(f"{login_server.url}/training_monitor")
    wait_for_app(page)
    _assert_only_sign_in(page)

    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name=USER_EMAIL).click()  # the mock provider's one-click user
    page.get_by_text(HOME_TITLE).wait_for()
    wait_for_app(page)
    page.get_by_text(f"Signed in as {USER_NAME}").first.wait_for()
    page.get_by_role("link", name="Training monitor").first.wait_for()
    page.screenshot(path=str(artifacts_dir / "login-signed-in.png"), full_page=True)

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="End session").click()  # the provider's logout confirmation
    wait_for_app(page)
    _assert_only_sign_in(page)
    page.reload()
    wait_for_app(page)
    _assert_only_sign_in(page)
    page.screenshot(path=str(artifacts_dir / "login-logged-out.png"), full_page=True)
