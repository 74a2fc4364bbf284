"""Host facts for /info: the data root's backing filesystem, named as Docker names it."""

from __future__ import annotations

from pathlib import Path

from essaim.engine.system import backing_filesystem

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /var/lib rw shared:9 - xfs /dev/vdb rw
31 30 0:27 / /var/lib/my\\040data rw shared:10 - btrfs /dev/vdc rw
40 22 0:30 / /tmp rw shared:12 - tmpfs tmpfs rw
"""


def test_the_deepest_mount_above_the_path_decides() -> None:
    assert backing_filesystem(Path("/srv/essaim"), MOUNTINFO) == "extfs"
    assert backing_filesystem(Path("/var/lib/essaim"), MOUNTINFO) == "xfs"
    assert backing_filesystem(Path("/var/lib/my data/x"), MOUNTINFO) == "btrfs"
    assert backing_filesystem(Path("/tmp"), MOUNTINFO) == "tmpfs"
    assert backing_filesystem(Path("/tmpfoo"), MOUNTINFO) == "extfs"  # not under /tmp
