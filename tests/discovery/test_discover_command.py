"""``manage.py discover``: one line per mailbox, figures as the servers count them."""

import json

import pytest

from tests.commands.conftest import run

from .conftest import count_on_server


def expected_line(scene, mailbox, over_limit: int) -> str:
    counted = count_on_server(scene.source, *scene.accounts[mailbox.source_address]).values()
    return (
        f"{mailbox.source_address} items={sum(c.items for c in counted)} "
        f"bytes={sum(c.size for c in counted)} folders={len(counted)} "
        f"largest={max(c.largest for c in counted)} over_limit={over_limit} problems="
    )


def test_discover_prints_the_servers_figures_and_exits_1_on_a_blocking_problem(scene):
    ann, ben, cid = scene.mailboxes
    result = run("discover", scene.project.pk, "--inline")
    assert result.code == 1 and "1 of 3 mailbox(es) cannot be copied" in result.message
    lines = dict(line.split(" ", 1) for line in result.out.splitlines())
    assert set(lines) == {ann.source_address, ben.source_address, cid.source_address}
    for mailbox, over_limit in ((ann, 0), (ben, 0), (cid, 1)):
        line = f"{mailbox.source_address} {lines[mailbox.source_address]}"
        assert line.startswith(expected_line(scene, mailbox, over_limit)), line
    assert lines[ann.source_address].endswith("problems=none")
    assert "problems=BLOCKING: Quota short by " in lines[ben.source_address]
    assert "problems=1 item over the target's size limit" in lines[cid.source_address]


def test_discover_one_mailbox_as_json(scene):
    ann = scene.mailboxes[0]
    result = run(
        "discover", scene.project.pk, "--mailbox", ann.source_address, "--inline", "--json"
    )
    assert result.code == 0, result.message
    reports = json.loads(result.out)
    assert list(reports) == [ann.source_address]
    counted = count_on_server(scene.source, *scene.accounts[ann.source_address])
    assert reports[ann.source_address]["items"] == sum(c.items for c in counted.values())


def test_discover_refuses_an_unknown_mailbox(scene):
    result = run("discover", scene.project.pk, "--mailbox", "nobody@old.example", "--inline")
    assert result.code == 2 and "no mailbox nobody@old.example" in result.message


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_discover_through_a_running_worker(scene, celery_worker_process):
    ann, ben, cid = scene.mailboxes
    result = run("discover", scene.project.pk)
    assert "discover_mailboxes" in celery_worker_process.log()
    assert result.code == 1, result.message
    lines = dict(line.split(" ", 1) for line in result.out.splitlines())
    for mailbox, over_limit in ((ann, 0), (ben, 0), (cid, 1)):
        line = f"{mailbox.source_address} {lines[mailbox.source_address]}"
        assert line.startswith(expected_line(scene, mailbox, over_limit)), line
    assert "BLOCKING: Quota short by " in lines[ben.source_address]
