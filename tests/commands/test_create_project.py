"""``manage.py create_project NAME --source URL --target URL``: the new id alone on stdout."""

import pytest

from projects.models import Project

from .conftest import run

pytestmark = pytest.mark.django_db


def test_servers_and_credentials_become_the_tenants():
    created = run(
        "create_project",
        "Contoso",
        "--source",
        "imaps://admin%40old.example:s%3Acret@mail.old.example?master=admin%40old.example",
        "--target",
        "imap+starttls://mail.new.example:1143?insecure=1",
    )
    assert created.code == 0, created.message
    project = Project.objects.get()
    assert created.out == f"{project.pk}\n"
    source, target = project.source, project.target
    assert (source.kind, source.endpoint, source.port, source.security) == (
        "imap",
        "mail.old.example",
        993,
        "tls",
    )
    assert (source.username, source.secret, source.impersonation) == (
        "admin@old.example",
        "s:cret",
        "admin@old.example",
    )
    assert source.verify_tls
    assert (target.endpoint, target.port, target.security, target.verify_tls) == (
        "mail.new.example",
        1143,
        "starttls",
        False,
    )
    assert (target.username, target.secret, target.impersonation) == ("", "", "")
    assert "s:cret" not in created.out + created.err


def test_a_maildir_target_and_members(django_user_model, tmp_path):
    django_user_model.objects.create_user("alice")
    created = run(
        "create_project",
        "Archive",
        "--source",
        "imap://ann:pw@127.0.0.1:1143",
        "--target",
        f"maildir://{tmp_path}",
        "--member",
        "alice",
    )
    project = Project.objects.get(pk=int(created.out))
    assert (project.target.kind, project.target.endpoint) == ("maildir", str(tmp_path))
    assert (project.source.username, project.source.secret) == ("ann", "pw")
    assert [user.username for user in project.members.all()] == ["alice"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("pop3://host.example", "must start with one of imap, imaps, imap+starttls, maildir"),
        ("imap://", "needs a host"),
        ("imap://host.example:99999", "is not valid"),
        ("imap://host.example?master=admin", "names a master user but no password"),
        ("imap://host.example?tls=1", "unknown parameters: tls"),
        ("maildir://relative/path", "must look like maildir:///path"),
    ],
)
def test_bad_urls_are_usage_errors(source, message):
    refused = run("create_project", "X", "--source", source, "--target", "imap://new.example")
    assert (refused.code, refused.out) == (2, "")
    assert message in refused.message
    assert not Project.objects.exists()


def test_an_unknown_member_creates_nothing():
    refused = run(
        "create_project", "X", "--source", "imap://a.example", "--target", "imap://b.example",
        "--member", "nobody",
    )  # fmt: skip
    assert (refused.code, refused.message) == (2, "There is no user nobody.")
    assert not Project.objects.exists()
