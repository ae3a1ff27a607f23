"""Per-user steps on the cutover page: a count per step ("412 of 10,005 done") and a filtered,
paginated drill-down, so that the page is the same size for 60 mailboxes or 100,000."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from mailboxes.models import Mailbox
from projects.cutover import add_step, ensure_checklist
from projects.models import MailboxStep
from projects.views.cutover import PER_USER_PAGE

pytestmark = pytest.mark.django_db


def add_mailboxes(project, count, start=0):
    Mailbox.objects.bulk_create(
        Mailbox(
            project=project,
            source_address=f"user{n:05}@contoso.example",
            target_address=f"user{n:05}@contoso.onmicrosoft.example",
            display_name=f"User {n}",
        )
        for n in range(start, start + count)
    )


@pytest.fixture
def checklist(client, bob, project):
    """Two per-user steps: the route's own and one the project added."""
    client.force_login(bob)
    ensure_checklist(project)
    readd = project.cutover_steps.get(key="readd-account")
    return readd, add_step(project, "Set the phone up again", "per_user")


def get(client, project, headers=None, **query):
    response = client.get(reverse("cutover", args=[project.pk]), query, headers=headers or {})
    assert response.status_code == 200
    return response.content.decode()


def shown(body) -> list[int]:
    """The mailboxes the drill-down lists, in its order."""
    return [int(pk) for pk in re.findall(r'<tr id="per-user-(\d+)">', body)]


def count_shown(body, step) -> tuple[int, int, str]:
    """(done, total, text) of a per-user step's count."""
    match = re.search(
        rf'id="per-user-count-{step.pk}" data-done="(\d+)" data-total="(\d+)">\s*<strong>(.*?)</',
        body,
    )
    assert match, f"no count for {step}"
    return int(match[1]), int(match[2]), match[3]


def caption_total(body) -> int:
    """How many mailboxes the drill-down says its filter matches."""
    match = re.search(r"<caption>(?:Mailboxes [\d,]+–[\d,]+ of ([\d,]+)|No mailboxes)", body)
    assert match, "no caption"
    return int((match[1] or "0").replace(",", ""))


def tick(step, mailboxes, user, done=True):
    for mailbox in mailboxes:
        step.set_mailbox_done(mailbox, user, done)


def done_in_db(step) -> set[int]:
    return set(
        MailboxStep.objects.filter(step=step, done_at__isnull=False).values_list(
            "mailbox_id", flat=True
        )
    )


def test_counts_and_drilldown_match_the_stored_states(client, bob, project, checklist):
    readd, phone = checklist
    add_mailboxes(project, 1207)
    mailboxes = list(project.mailboxes.order_by("source_address"))
    tick(phone, mailboxes[::3], bob)
    tick(phone, mailboxes[::9], bob, done=False)  # ticked, then un-ticked: not done
    tick(readd, mailboxes[5:8], bob)
    body = get(client, project)

    everyone = {m.pk for m in mailboxes}
    for step in (readd, phone):
        done = done_in_db(step)
        assert count_shown(body, step) == (
            len(done),
            len(everyone),
            f"{len(done):,} of {len(everyone):,} done",
        )
        for state, expected in (("done", done), ("todo", everyone - done)):
            listed = []
            page = 1
            while True:
                page_body = get(client, project, step=step.pk, state=state, page=page)
                assert caption_total(page_body) == len(expected)
                rows = shown(page_body)
                assert len(rows) <= PER_USER_PAGE
                listed += rows
                if 'rel="next"' not in page_body:
                    break
                page += 1
            assert len(listed) == len(set(listed))
            assert set(listed) == expected, (step, state)


def test_search_and_pages(client, bob, project, checklist):
    add_mailboxes(project, 120)
    first = get(client, project)
    assert len(shown(first)) == PER_USER_PAGE
    assert caption_total(first) == 120 and "Page 1 of 3" in first
    last = get(client, project, page=3)
    assert len(shown(last)) == 20 and 'rel="prev"' in last and 'rel="next"' not in last

    found = get(client, project, q="USER0011")
    expected = project.mailboxes.filter(source_address__icontains="user0011")
    assert set(shown(found)) == set(expected.values_list("pk", flat=True))
    assert len(shown(found)) == 10  # user00110 … user00119
    assert "matching “USER0011”" in found

    nothing = get(client, project, q="nobody-at-all")
    assert shown(nothing) == [] and "No mailbox matches this filter." in nothing


def test_a_hand_edited_filter_falls_back(client, project, checklist):
    add_mailboxes(project, 3)
    body = get(client, project, step="999999", state="bogus", page="x")
    assert len(shown(body)) == 3


def test_the_page_does_not_grow_with_the_mailboxes(client, bob, project, checklist):
    """Same queries, about the same bytes, for 60 mailboxes and for 600."""
    phone = checklist[1]
    sizes, queries = {}, {}
    for total in (60, 600):
        add_mailboxes(project, total - project.mailboxes.count(), start=project.mailboxes.count())
        # Every fourth mailbox, so that the first page looks the same in both projects; stored
        # directly, so that the history (its last 25 ticks) does not differ either.
        MailboxStep.objects.bulk_create(
            MailboxStep(step=phone, mailbox=m, done_at=timezone.now(), done_by=bob)
            for m in list(project.mailboxes.order_by("pk"))[::4]
            if not m.cutover_parts.exists()
        )
        for name, headers in (("page", {}), ("partial", {"HX-Request": "true"})):
            with CaptureQueriesContext(connection) as captured:
                body = get(client, project, headers)
            sizes[name, total] = len(body.encode())
            queries[name, total] = len(captured)
    for name in ("page", "partial"):
        assert queries[name, 60] == queries[name, 600]
        # Only the figures' digits differ ("15 of 60" against "150 of 600", the last page).
        assert abs(sizes[name, 600] - sizes[name, 60]) < 200, sizes
    assert sizes["page", 600] < 200_000


def test_an_action_keeps_the_drilldown_as_it_was(client, bob, project, checklist):
    phone = checklist[1]
    project.state = "cutover"  # the page polls
    project.save()
    add_mailboxes(project, 80)
    target = project.mailboxes.get(source_address="user00042@contoso.example")
    url = reverse("cutover_mailbox_tick", args=[project.pk, phone.pk, target.pk])
    here = f"?step={phone.pk}&state=todo&q=user0004"

    response = client.post(url + here, {"done": "1"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="checklist"')
    expected = set(
        project.mailboxes.filter(source_address__contains="user0004")
        .exclude(pk=target.pk)
        .values_list("pk", flat=True)
    )
    assert set(shown(body)) == expected  # still filtered, the ticked one gone from "to do"
    assert done_in_db(phone) == {target.pk}
    # The poll and the next actions carry the filter on.
    kept = here.replace("&", "&amp;")
    assert f'hx-get="{reverse("cutover", args=[project.pk])}{kept}"' in body
    other = min(expected)
    other_url = reverse("cutover_mailbox_tick", args=[project.pk, phone.pk, other])
    assert f'formaction="{other_url}{kept}"' in body

    # Without JavaScript the redirect goes back to the same filter.
    response = client.post(url + here, {"done": "0"})
    assert response.status_code == 302
    assert response["Location"] == reverse("cutover", args=[project.pk]) + here
    assert done_in_db(phone) == set()


def test_going_back_to_a_pushed_url_gets_the_whole_page(client, project, checklist):
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    assert "<html" in get(client, project, headers)
    assert "<html" not in get(client, project, {"HX-Request": "true"})
