import re

import pytest
from django.db.models import Min
from django.urls import reverse
from django.utils import timezone

from mailboxes.models import Mailbox
from tests.rendered import column, text

from .conftest import add_mailbox, add_pass, add_samples


def url(project):
    return reverse("project_detail", args=[project.pk])


def addresses(response):
    """The local parts of the mailbox rows the page shows, in their order."""
    html = response.content.decode()
    return re.findall(r'<th scope="row"><a id="open-\d+" href="[^"]*">([^@<]*)@', html)


@pytest.mark.django_db
def test_one_row_per_mailbox_with_its_progress(client, bob, busy_project):
    client.force_login(bob)
    response = client.get(url(busy_project))
    assert addresses(response) == ["dora", "fred", "nina", "rick"]
    html = response.content.decode()
    rick = re.search(r'<tr id="mailbox-\d+">(?:(?!</tr>).)*rick@(?:(?!</tr>).)*</tr>', html, re.S)
    assert 'value="25"' in rick.group(0)  # 50 of 200 items
    assert "50 / 200" in rick.group(0) and "Copying" in rick.group(0)
    assert "Denied" in html  # the failed mailbox's reason
    for name in ("mailbox_import", "mailbox_export"):
        assert reverse(name, args=[busy_project.pk]) in html
    assert "<svg" in html  # the throughput chart


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"show": "failed"}, ["fred"]),
        ({"show": "running"}, ["rick"]),
        ({"show": "new"}, ["nina"]),
        ({"show": "done"}, ["dora"]),
        ({"q": "NIN"}, ["nina"]),
        ({"errors": "on"}, ["fred"]),
        ({"show": "bogus"}, ["dora", "fred", "nina", "rick"]),
    ],
)
def test_filters_and_search(client, bob, busy_project, params, expected):
    client.force_login(bob)
    assert addresses(client.get(url(busy_project), params)) == expected


@pytest.mark.django_db
def test_thousands_of_mailboxes_are_paged_in_constant_queries(
    client, bob, project, django_assert_max_num_queries
):
    Mailbox.objects.bulk_create(
        Mailbox(
            project=project,
            source_address=f"u{n:04}@contoso.example",
            target_address=f"u{n:04}@new.example",
            state=Mailbox.State.COPYING,
            items_total=10,
        )
        for n in range(1200)
    )
    for mailbox in project.mailboxes.all()[:60]:
        add_samples(mailbox, count=1)
    client.force_login(bob)
    # Two of them ask whether a worker answers and, none having, what waits for one; the
    # whole page (not the poll) one more for the next schedules.
    with django_assert_max_num_queries(13):
        response = client.get(url(project), {"page": 3})
    assert addresses(response)[0] == "u0100"
    assert len(addresses(response)) == 50
    assert "Page 3 of 24" in response.content.decode()
    with django_assert_max_num_queries(12):
        client.get(url(project), {"page": 3}, headers={"HX-Request": "true"})


@pytest.mark.django_db
def test_partial_polls_with_the_filter_and_keeps_ticked_rows(client, bob, busy_project):
    client.force_login(bob)
    rick = busy_project.mailboxes.get(source_address__startswith="rick")
    response = client.get(
        url(busy_project),
        {"show": "running", "selected": [rick.pk]},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="live"') and "<html" not in body
    assert f'hx-get="{url(busy_project)}?show=running&amp;page=1"' in body
    assert re.search(rf'value="{rick.pk}" form="bulk"[^>]*checked', body)


@pytest.mark.django_db
def test_polling_stops_when_nothing_runs(client, bob, busy_project):
    busy_project.mailboxes.filter(state=Mailbox.State.COPYING).update(state=Mailbox.State.DONE)
    client.force_login(bob)
    response = client.get(url(busy_project), headers={"HX-Request": "true"})
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()


@pytest.mark.django_db
def test_empty_project_points_to_the_import(client, bob, project):
    client.force_login(bob)
    html = client.get(url(project)).content.decode()
    assert "import a CSV" in html and "hx-trigger" not in html


@pytest.mark.django_db
def test_a_running_mailbox_shows_its_throughput(client, bob, project):
    mailbox = add_mailbox(project, "ann", Mailbox.State.COPYING, copied=1, total=5)
    add_pass(mailbox)
    add_samples(mailbox, count=2, bytes_=2_000_000, items=1)
    client.force_login(bob)
    first_at = mailbox.progress_samples.aggregate(first=Min("at"))["first"]
    before = timezone.now()
    response = client.get(url(project))
    after = timezone.now()
    # 4 MB copied since the first sample (20 s before the last), measured up to the moment the
    # page is made: about 195 KB/s, shown to a tenth of a KB.
    [shown] = column(response, "mailboxes", "Throughput")
    kb_per_second = float(shown.removesuffix(" KB/s"))
    since = [(moment - first_at).total_seconds() for moment in (before, after)]
    assert 4_000_000 / since[1] / 1024 - 0.05 <= kb_per_second <= 4_000_000 / since[0] / 1024 + 0.05


@pytest.mark.django_db
def test_a_new_pass_shows_no_throughput_of_the_pass_before(client, bob, project):
    """Copied a minute ago by the last pass; the new one is still listing: no speed to show."""
    mailbox = add_mailbox(project, "ann", Mailbox.State.LISTING)
    add_pass(mailbox, folders=(), state="done")
    add_samples(mailbox, count=2, bytes_=2_000_000, items=1)
    add_pass(mailbox, folders=(), state="planning", started_at=timezone.now())
    client.force_login(bob)
    response = client.get(url(project))
    assert column(response, "mailboxes", "Throughput") == ["—"]
    assert "Throughput 0 bytes/s · 0.0 items/s" in text(response)
