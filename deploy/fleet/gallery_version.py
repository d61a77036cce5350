#!/usr/bin/env python3
"""Print the gallery version (content hash) of a gallery folder, as a device reports it.

    python3 deploy/fleet/gallery_version.py /srv/edgeface/central-gallery

Compare it with `status.gallery.version` of every device (retained on
`<prefix>/<device>/status`) to see which devices match against the central gallery. Needs the
edgeface package (for the folder rules) but no models: only names and file bytes are hashed.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from edgeface.gallery.folder import FolderScanner
from edgeface.gallery.store import PhotoReport, gallery_version
from edgeface.images import MAX_FILE_BYTES


def folder_version(root: Path) -> str:
    # settle_seconds=0: the central copy is not being written while it is pushed.
    scan = FolderScanner(root, settle_seconds=0).scan(time.time())
    reports = []
    for entry in scan.photos:
        sha = None
        if entry.size <= MAX_FILE_BYTES:
            try:
                sha = hashlib.sha256(entry.path.read_bytes()).hexdigest()
            except OSError:
                sha = None  # the daemon hashes an unreadable file as "unread" too
        reports.append(PhotoReport(entry.path, entry.person, entry.negative, False, sha256=sha))
    return gallery_version(scan, tuple(reports))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not Path(argv[1]).is_dir():
        print("usage: gallery_version.py GALLERY_DIR", file=sys.stderr)
        return 2
    print(folder_version(Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
