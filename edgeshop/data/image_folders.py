"""The one walk that finds images in folders, behind every command that reads a dataset or
product folder (training, evaluation, calibration, enrolment). Stdlib only.

The rule (docs/datasets.md, "How edgeshop finds your photos"):
- links are followed, to folders and to files alike: datasets assembled from links are common;
- a folder reached a second time (a link loop, or two links to one folder) is searched once,
  recognised by its (device, inode), so no link can make the walk endless;
- the walk goes at most ``max_depth`` folder levels below the root and lists at most
  ``max_entries`` directory entries in all, so a link to ``/`` or a home folder costs
  seconds at most, not the whole file system;
- a class folder is a folder with image files directly in it; its images are those files
  (at most ``max_per_folder`` are listed: one more than any caller accepts, so an
  oversized class is seen without listing all of it);
- a folder that really lies outside the root (reached through a link) is allowed and reported.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from edgeshop.errors import DataError
from edgeshop.runtime.preprocess import IMAGE_SUFFIXES

MAX_ENTRIES = 2_000_000  # directory entries listed per walk: above any catalogue's folders and files


@dataclass
class FolderScan:
    """What a walk of ``root`` found (paths as walked, i.e. through the links)."""

    root: Path
    folders: list[Path] = field(default_factory=list)  # every folder searched below the root, in walk order
    class_folders: dict[Path, list[Path]] = field(default_factory=dict)  # folder -> its image files, sorted
    loose: list[Path] = field(default_factory=list)  # images directly in the root: in no class folder
    outside: list[tuple[Path, Path]] = field(default_factory=list)  # (class folder, where it really is)
    repeated: list[Path] = field(default_factory=list)  # links to a folder already searched: skipped
    too_deep: list[Path] = field(default_factory=list)  # folders below max_depth: not searched
    broken: list[Path] = field(default_factory=list)  # links that lead nowhere
    unlistable: list[tuple[Path, str]] = field(default_factory=list)  # folders that cannot be read (why)
    not_regular: list[Path] = field(default_factory=list)  # image-named devices, pipes, sockets
    empty: list[Path] = field(default_factory=list)  # folders with nothing in them
    cut: list[Path] = field(default_factory=list)  # folders with more than max_per_folder images

    def images(self) -> list[Path]:
        """Every image found, loose ones included, in walk order."""
        return [*self.loose, *(p for files in self.class_folders.values() for p in files)]


def scan_images(root: str | Path, max_depth: int, max_per_folder: int,
                max_entries: int = MAX_ENTRIES) -> FolderScan:
    """Walk ``root`` by the module's rule: folders ``max_depth`` levels deep at most (1: only
    the folders directly inside the root), at most ``max_per_folder`` images listed per folder."""
    root = Path(root)
    scan = FolderScan(root)
    try:
        root_real = root.resolve(strict=True)
        seen = {_identity(os.stat(root))}
    except OSError as exc:
        raise DataError(f"{root}: cannot be read ({exc.strerror or exc})") from None
    stack: list[tuple[Path, int]] = [(root, 0)]
    listed = 0
    while stack:
        folder, depth = stack.pop()
        if depth:
            scan.folders.append(folder)
        entries = []
        try:
            with os.scandir(folder) as listing:
                for entry in listing:  # counted as listed: one huge folder cannot outgrow the bound either
                    listed += 1
                    if listed > max_entries:
                        raise DataError(f"{root}: more than {max_entries:,} files and folders within {max_depth} "
                                        f"levels (e.g. in {folder}); is a folder in it a link to / or a home "
                                        "folder? Point at the photos only")
                    entries.append(entry)
        except OSError as exc:
            scan.unlistable.append((folder, exc.strerror or str(exc)))
            continue
        entries.sort(key=lambda e: e.name)
        if not entries and depth > 0:
            scan.empty.append(folder)
        images, below = [], []
        for entry in entries:
            path = Path(entry.path)
            try:
                info = entry.stat()  # follows links
            except OSError:
                if entry.is_symlink():
                    scan.broken.append(path)
                continue
            if stat.S_ISDIR(info.st_mode):
                if _identity(info) in seen:
                    scan.repeated.append(path)
                elif depth + 1 > max_depth:
                    scan.too_deep.append(path)
                else:
                    seen.add(_identity(info))
                    below.append(path)
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                if not stat.S_ISREG(info.st_mode):
                    scan.not_regular.append(path)
                elif len(images) < max_per_folder:
                    images.append(path)
                elif folder not in scan.cut:
                    scan.cut.append(folder)
        if images and depth == 0:
            scan.loose.extend(images)
        elif images:
            scan.class_folders[folder] = images
            real = folder.resolve()
            if not real.is_relative_to(root_real):
                scan.outside.append((folder, real))
        stack.extend((path, depth + 1) for path in reversed(below))  # popped in name order
    return scan


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino
