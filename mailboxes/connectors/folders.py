"""Folder paths as stored text, and where each source folder lands on the target.

A path is a tuple of Unicode components (no separator: each protocol has its own). Stored and
shown as one string joined by ``/``, with ``/`` and ``\\`` inside a component escaped by ``\\``,
so ``("a/b", "c")`` and ``("a", "b", "c")`` stay distinct.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Folder


def join_path(path: tuple[str, ...]) -> str:
    return "/".join(part.replace("\\", "\\\\").replace("/", "\\/") for part in path)


def split_path(text: str) -> tuple[str, ...]:
    parts, current, chars = [], [], iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, "\\"))
        elif char == "/":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return tuple(part for part in parts if part)


@dataclass(frozen=True)
class Override:
    """A per-project mapping: rename a source folder (and its subtree) or leave it out."""

    source: tuple[str, ...]
    target: tuple[str, ...] = ()
    exclude: bool = False


@dataclass(frozen=True)
class Placement:
    """Where one source folder goes: ``target`` with ``role``; ``role`` alone means "the
    target's own folder for that role", resolved by the target connector."""

    folder: Folder
    target: tuple[str, ...]
    role: str | None


def _override_for(path: tuple[str, ...], overrides: list[Override]) -> Override | None:
    matches = [o for o in overrides if path[: len(o.source)] == o.source]
    return max(matches, key=lambda o: len(o.source), default=None)


def place_folders(folders: list[Folder], overrides: list[Override]) -> list[Placement]:
    """Target placement of every source folder, parents first; excluded ones are left out.

    An override applies to the folder and its subtree (the most specific one wins). A folder
    with a role goes to the target's folder of that role; its subfolders follow it there, which
    the engine completes once the target has told it the role folder's real path.
    """
    placements = []
    for folder in sorted(folders, key=lambda f: (len(f.path), f.path)):
        override = _override_for(folder.path, overrides)
        if override and override.exclude:
            continue
        if override and override.target:
            target = override.target + folder.path[len(override.source) :]
            placements.append(Placement(folder, target, None))
        else:
            placements.append(Placement(folder, folder.path, folder.role))
    return placements


def rebase(path: tuple[str, ...], moved: dict[tuple[str, ...], tuple[str, ...]]) -> tuple:
    """``path`` under the new place of its nearest ancestor that moved (a role folder whose
    target name differs), or unchanged."""
    for length in range(len(path) - 1, 0, -1):
        if path[:length] in moved:
            return moved[path[:length]] + path[length:]
    return path
