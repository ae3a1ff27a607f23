"""The test server's own operations that the connector does not use yet, through exchangelib."""

from tests.ews.conftest import ALICE


def test_hierarchy_sync_reports_only_new_folders(source, source_connector):
    top = source_connector.account.msg_folder_root
    first = [folder.name for change, folder in top.sync_hierarchy() if change == "create"]
    source.state.add_folder(ALICE, "Inbox", "Later", "IPF.Note")

    second = [folder.name for change, folder in top.sync_hierarchy() if change == "create"]

    assert {"Inbox", "Projects", "Calendar", "Team Calendar"} <= set(first)
    assert second == ["Later"]
    assert source.requests["SyncFolderHierarchy"] == 2
