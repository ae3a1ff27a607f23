"""Two-factor login with TOTP: setting up a device, the code after the password, the admin too.

Codes come from django-otp's own TOTP implementation over the device's key: real codes, checked
by the real verification, no mocks.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

SETUP = "/account/two-factor/"
VERIFY = "/account/two-factor/verify/"


def code_for(device):
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def wrong_code_for(device):
    return f"{(int(code_for(device)) + 1) % 10**device.digits:0{device.digits}d}"


def log_in(client, username, password):
    response = client.post("/login/", {"username": username, "password": password, "next": ""})
    assert response.status_code == 302, response.content.decode()


@pytest.fixture
def phone(alice):
    return TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)


@pytest.fixture
def project_url(project):
    return reverse("project_detail", args=[project.pk])


def test_setup_shows_the_key_and_a_real_code_confirms_it(client, alice, project_url):
    client.force_login(alice)

    page = client.get(SETUP).content.decode()
    device = TOTPDevice.objects.get(user=alice, confirmed=False)
    assert device.config_url in page.replace("&amp;", "&")
    assert "otpauth://totp/mailferry:alice?" in page.replace("%3A", ":")

    response = client.post(f"{SETUP}?next={project_url}", {"code": code_for(device)})

    assert response.status_code == 302 and response["Location"] == project_url
    device.refresh_from_db()
    assert device.confirmed
    assert "Two-factor login is on" in client.get(SETUP).content.decode()


def test_setup_refuses_a_wrong_code(client, alice):
    client.force_login(alice)
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=alice)

    response = client.post(SETUP, {"code": wrong_code_for(device)})

    assert "That code is not right" in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed


def test_login_asks_for_the_code_after_the_password(client, alice, phone, project, project_url):
    log_in(client, "alice", "password-alice")

    for url in ("/", project_url):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"{VERIFY}?next={url.replace('/', '%2F')}"
    response = client.post(f"{VERIFY}?next={project_url}", {"code": code_for(phone)})

    assert response["Location"] == project_url
    assert client.get(project_url).status_code == 200


def test_wrong_code_is_refused(client, alice, phone, project_url):
    log_in(client, "alice", "password-alice")

    response = client.post(VERIFY, {"code": wrong_code_for(phone)})

    assert response.status_code == 200
    assert "That code is not right" in response.content.decode()
    assert client.get(project_url).status_code == 302


def test_codes_are_throttled(client, alice, phone, project_url, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 60  # a wait no slow test run outlasts
    log_in(client, "alice", "password-alice")
    client.post(VERIFY, {"code": wrong_code_for(phone)})

    # Straight after a wrong code even the right one waits: guessing a million codes is slow.
    response = client.post(VERIFY, {"code": code_for(phone)})
    assert "Too many wrong codes: wait" in response.content.decode()
    assert client.get(project_url).status_code == 302

    phone.refresh_from_db()
    phone.throttling_failure_timestamp -= timedelta(seconds=60)
    phone.save()
    assert client.post(VERIFY, {"code": code_for(phone)}).status_code == 302
    assert client.get(project_url).status_code == 200


def test_user_without_a_device_is_not_asked(client, alice, project_url):
    log_in(client, "alice", "password-alice")

    assert client.get(project_url).status_code == 200


def test_required_sends_a_user_without_a_device_to_setup(client, alice, project_url, settings):
    settings.TWO_FACTOR_REQUIRED = True
    client.force_login(alice)

    response = client.get(project_url)

    assert response.status_code == 302
    assert response["Location"].startswith(SETUP)
    page = client.get(SETUP).content.decode()
    assert "requires two-factor login" in page
    assert client.get("/admin/").status_code == 302


def test_setup_cannot_replace_a_device_before_its_code(client, alice, phone):
    log_in(client, "alice", "password-alice")

    response = client.get(SETUP)

    assert response.status_code == 302 and response["Location"] == VERIFY
    assert TOTPDevice.objects.filter(user=alice).count() == 1


def test_admin_asks_for_the_code_too(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "", "password-root")
    device = TOTPDevice.objects.create(user=root, name="phone", confirmed=True)
    client.post("/admin/login/", {"username": "root", "password": "password-root"})

    response = client.get("/admin/projects/project/")
    assert response.status_code == 302 and response["Location"].startswith(VERIFY)

    client.post(VERIFY, {"code": code_for(device)})
    assert client.get("/admin/projects/project/").status_code == 200


def test_htmx_request_redirects_the_whole_page(client, alice, phone, project_url):
    log_in(client, "alice", "password-alice")

    response = client.get(
        f"{project_url}?fragment=1",
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{project_url}"},
    )

    assert response["HX-Redirect"] == f"{VERIFY}?next={project_url.replace('/', '%2F')}"
