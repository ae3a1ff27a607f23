"""The readiness page, its CSV and the mailbox page's discovery card, against the servers."""

import csv
import io
import re

from django.urls import reverse

from mailboxes import discovery
from mailboxes.tasks import discover_mailboxes
from tests.servers.worker import purge_filesystem_broker, queued_tasks

from .conftest import count_on_server


def _truth(scene, mailbox):
    counted = count_on_server(scene.source, *scene.accounts[mailbox.source_address]).values()
    return {
        "items": sum(c.items for c in counted),
        "bytes": sum(c.size for c in counted),
        "folders": len(counted),
        "largest": max(c.largest for c in counted),
    }


def _row(html: str, mailbox) -> dict:
    match = re.search(rf'<tr id="ready-{mailbox.pk}"[^>]*>', html)
    assert match, f"no row for {mailbox}"
    return {k.replace("-", "_"): v for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', match[0])}


def test_readiness_page_shows_the_servers_figures(scene, client, alice):
    scene.project.members.add(alice)
    client.force_login(alice)
    for mailbox in scene.mailboxes:
        discovery.discover_mailbox(mailbox)
    ann, ben, cid = scene.mailboxes
    response = client.get(reverse("project_readiness", args=[scene.project.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    truths = {m.pk: _truth(scene, m) for m in scene.mailboxes}
    for mailbox in scene.mailboxes:
        row, truth = _row(html, mailbox), truths[mailbox.pk]
        assert int(row["items"]) == truth["items"]
        assert int(row["bytes"]) == truth["bytes"]
        assert int(row["folders"]) == truth["folders"]
        assert int(row["largest"]) == truth["largest"]
    assert _row(html, cid)["over_limit"] == "1"
    # Sorted by volume, largest first.
    order = [m.pk for m in sorted(scene.mailboxes, key=lambda m: -truths[m.pk]["bytes"])]
    positions = [html.index(f'id="ready-{pk}"') for pk in order]
    assert positions == sorted(positions)
    # The blocking problem is marked; the others are not.
    ben_row = html[html.index(f'id="ready-{ben.pk}"') :].split("</tr>")[0]
    tags = {m.pk: re.search(rf'<tr id="ready-{m.pk}"[^>]*>', html)[0] for m in scene.mailboxes}
    assert [pk for pk, tag in tags.items() if 'class="failed"' in tag] == [ben.pk]
    assert "<strong>Blocking:</strong> Quota short by " in ben_row
    cid_row = html[html.index(f'id="ready-{cid.pk}"') :].split("</tr>")[0]
    assert "1 item over the target" in cid_row and "Blocking" not in cid_row
    # Project totals and estimate.
    total_items = sum(t["items"] for t in truths.values())
    total_bytes = sum(t["bytes"] for t in truths.values())
    assert f'data-items="{total_items}"' in html and f'data-bytes="{total_bytes}"' in html
    assert 'data-discovered="3" data-total="3"' in html and 'data-blocked="1"' in html
    # Before any pass: the stated default, 3 mailboxes in parallel lanes -> the largest one.
    throughput = discovery.Throughput(
        discovery.DEFAULT_BYTES_PER_SECOND, discovery.DEFAULT_ITEMS_PER_SECOND, False
    )
    longest = max(throughput.seconds(t["items"], t["bytes"]) for t in truths.values())
    assert f'data-estimate-seconds="{longest}"' in html
    assert "the default throughput before any pass" in html

    # The CSV says the same.
    response = client.get(reverse("project_readiness_csv", args=[scene.project.pk]))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_address = {row["source_address"]: row for row in rows}
    for mailbox in scene.mailboxes:
        row, truth = by_address[mailbox.source_address], truths[mailbox.pk]
        assert (int(row["items"]), int(row["bytes"])) == (truth["items"], truth["bytes"])
        assert int(row["largest"]) == truth["largest"]
    assert by_address[ben.source_address]["blocking"] == "yes"
    assert by_address[ben.source_address]["problems"].startswith("BLOCKING: Quota short by ")
    assert by_address[cid.source_address]["over_limit"] == "1"
    assert by_address["TOTAL"]["items"] == str(total_items)
    assert by_address["TOTAL"]["estimate_seconds"] == str(longest)

    # The mailbox page shows the same figures.
    html = client.get(ann.get_absolute_url()).content.decode()
    truth = truths[ann.pk]
    assert f'data-items="{truth["items"]}"' in html and f'data-bytes="{truth["bytes"]}"' in html
    assert f'data-folders="{truth["folders"]}"' in html


def test_discover_polls_until_done_and_can_run_again(
    scene, client, alice, django_capture_on_commit_callbacks
):
    scene.project.members.add(alice)
    client.force_login(alice)
    url = reverse("project_readiness", args=[scene.project.pk])
    purge_filesystem_broker()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("project_discover", args=[scene.project.pk]))
    assert response.status_code == 302
    # Once committed, one discovery task per mailbox waits in the broker for a worker.
    assert sorted(queued_tasks()) == sorted(
        ("mailboxes.tasks.discover_mailboxes", [[m.pk]], {}) for m in scene.mailboxes
    )
    html = client.get(url).content.decode()
    assert 'data-discovered="0" data-total="3"' in html and "discovering 3…" in html
    assert 'hx-trigger="every 2s"' in html
    # The worker's task, run here: each mailbox discovered, and the poll ends (286).
    discover_mailboxes([m.pk for m in scene.mailboxes])
    response = client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 286
    assert 'data-discovered="3" data-total="3"' in response.content.decode()
    # Again, from the project page's bulk action.
    purge_filesystem_broker()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("mailbox_bulk_action", args=[scene.project.pk]),
            {"action": "discover", "scope": "selected", "selected": [scene.mailboxes[0].pk]},
        )
    first = scene.mailboxes[0].pk
    assert queued_tasks() == [("mailboxes.tasks.discover_mailboxes", [[first]], {})]
    assert "discovering 1…" in client.get(url).content.decode()


def test_an_unreadable_option_ends_with_a_problem_not_a_pending_row(scene):
    """A tenant option saved around the form (a timeout that is no number) is named by the
    connector: the mailbox ends discovered, blocked, with the option in the problem."""
    mailbox = scene.mailboxes[0]
    source = scene.project.source
    source.options = {"timeout": "soon"}
    source.save()
    discovery.request_discovery([mailbox])
    discover_mailboxes([mailbox.pk])
    mailbox.refresh_from_db()
    assert not discovery.is_pending(mailbox) and not discovery.never_answered(mailbox)
    assert mailbox.discovery_blocking
    text = mailbox.discovery["problems"][0]["text"]
    assert text.startswith("Source cannot be read: ") and "timeout" in text and "'soon'" in text


def test_the_project_estimate_follows_the_tenant_concurrency(scene, settings):
    """Largest mailbox first into the least loaded of N lanes: with one connection the
    mailboxes take turns, with a tenant option of 2 the two smaller share a lane."""
    for mailbox in scene.mailboxes:
        discovery.discover_mailbox(mailbox)
    settings.TENANT_CONNECTION_LIMIT = 1
    ready = discovery.readiness(scene.project)
    times = sorted((row.estimate_seconds for row in ready.rows), reverse=True)
    assert ready.concurrency == 1 and ready.estimate_seconds == sum(times)
    settings.TENANT_CONNECTION_LIMIT = 4
    target = scene.project.target
    target.options = {**target.options, "concurrency": 2}
    target.save()
    ready = discovery.readiness(scene.project)
    assert ready.concurrency == 2
    assert ready.estimate_seconds == max(times[0], times[1] + times[2])
