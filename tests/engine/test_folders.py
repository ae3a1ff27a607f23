"""Folder paths as text and their placement on the target (pure Python)."""

import pytest

from mailboxes.connectors.base import Folder
from mailboxes.connectors.folders import Override, join_path, place_folders, rebase, split_path


@pytest.mark.parametrize(
    "path",
    [("INBOX",), ("a/b", "c"), ("a", "b", "c"), ("back\\slash", "x/"), ("Ünïcode & co", "v1.2")],
)
def test_paths_survive_the_round_trip_through_text(path):
    assert split_path(join_path(path)) == path


def test_a_slash_inside_a_name_is_not_a_level():
    assert join_path(("a/b", "c")) != join_path(("a", "b", "c"))


def test_overrides_apply_to_the_subtree_and_the_most_specific_wins():
    folders = [
        Folder(("INBOX",), role="inbox"),
        Folder(("Archive",)),
        Folder(("Archive", "2014")),
        Folder(("Archive", "Keep")),
        Folder(("Junk",), role="junk"),
        Folder(("Junk", "Old")),
    ]
    overrides = [
        Override(("Archive",), ("Old", "Archive")),
        Override(("Archive", "Keep"), ("Kept",)),
        Override(("Junk",), exclude=True),
    ]
    placed = {p.folder.path: (p.target, p.role) for p in place_folders(folders, overrides)}
    assert placed == {
        ("INBOX",): (("INBOX",), "inbox"),
        ("Archive",): (("Old", "Archive"), None),
        ("Archive", "2014"): (("Old", "Archive", "2014"), None),
        ("Archive", "Keep"): (("Kept",), None),
    }


def test_subfolders_follow_their_role_folder_to_its_target_name():
    moved = {("Sent Messages",): ("Sent Items",)}
    assert rebase(("Sent Messages", "2019", "Q1"), moved) == ("Sent Items", "2019", "Q1")
    assert rebase(("Other",), moved) == ("Other",)
