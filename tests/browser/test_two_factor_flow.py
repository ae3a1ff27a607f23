"""A consultant turns on two-factor login in the browser, then logs in with password and code."""

import time
from base64 import b32decode

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect

from tests.servers.chromium import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def code(secret: str, steps_ahead: int = 0) -> str:
    totp = TOTP(b32decode(secret))
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def test_set_up_two_factor_then_log_in_with_a_code(live_server, alice, browser_context, screenshot):
    page = browser_context.new_page()
    log_in(page, live_server.url)
    page.get_by_role("link", name="Two-factor").click()
    secret = page.locator("code.secret").inner_text()
    screenshot(page, "two-factor-setup")
    page.fill("#id_code", code(secret))
    page.get_by_role("button", name="Turn on two-factor login").click()
    expect(page.get_by_text("Two-factor login is on")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server.url, landing="Two-factor code")
    page.goto(f"{live_server.url}/projects/new/")
    expect(page.get_by_role("heading", name="Two-factor code")).to_be_visible()
    screenshot(page, "two-factor-verify")
    # A code counts once: the setup just used this period's, so give the next period's (the
    # device accepts one period of clock drift either way).
    page.fill("#id_code", code(secret, steps_ahead=1))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("button", name="Save project")).to_be_visible()


def test_lockout_says_why_on_the_login_page(live_server, alice, browser_context, screenshot):
    page = browser_context.new_page()
    for number in range(5):
        log_in(page, live_server.url, password=f"guess-{number}", landing=None)

    log_in(page, live_server.url, landing=None)

    expect(page.get_by_role("alert")).to_contain_text("Too many failed logins")
    expect(page.get_by_role("alert")).to_contain_text("15 minutes")
    screenshot(page, "login-locked-out")
