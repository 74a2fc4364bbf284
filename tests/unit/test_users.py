"""Docker's --user and --group-add resolved against a container's passwd and group files."""

import os
from pathlib import Path

import pytest

from essaim.errors import InvalidParameter
from essaim.runtime.users import ResolvedUser, read_file_in_root, resolve_user

pytestmark = pytest.mark.unit

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment line must not match uid 0
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
broken:x:notanumber:1::/:/bin/sh
"""

GROUP = """\
root:x:0:
wheel:x:10:root,alice
users:x:100:bob
alice:x:1000:
video:x:44:alice,bob
docker:x:999:
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


def test_no_user_is_root_with_roots_member_groups(rootfs: Path) -> None:
    assert resolve_user(rootfs, "") == ResolvedUser(0, 0, [0, 10])


def test_name_takes_passwd_ids_and_member_groups(rootfs: Path) -> None:
    assert resolve_user(rootfs, "alice") == ResolvedUser(1000, 1000, [1000, 10, 44])


def test_member_groups_follow_group_file_order(rootfs: Path) -> None:
    assert resolve_user(rootfs, "bob") == ResolvedUser(1001, 100, [100, 44])


def test_numeric_uid_with_entry_uses_entry(rootfs: Path) -> None:
    assert resolve_user(rootfs, "1000") == ResolvedUser(1000, 1000, [1000, 10, 44])


def test_numeric_uid_without_entry_gets_gid_zero(rootfs: Path) -> None:
    assert resolve_user(rootfs, "4242") == ResolvedUser(4242, 0, [0])


def test_uid_and_numeric_gid(rootfs: Path) -> None:
    assert resolve_user(rootfs, "4242:4343") == ResolvedUser(4242, 4343, [4343])


def test_explicit_group_replaces_gid_and_member_groups(rootfs: Path) -> None:
    assert resolve_user(rootfs, "alice:video") == ResolvedUser(1000, 44, [44])


def test_uid_with_group_name(rootfs: Path) -> None:
    assert resolve_user(rootfs, "1001:docker") == ResolvedUser(1001, 999, [999])


def test_unknown_user_name_is_refused_with_dockers_words(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter) as info:
        resolve_user(rootfs, "mallory")
    assert info.value.message == "unable to find user mallory: no matching entries in passwd file"


def test_unknown_group_name_is_refused_with_dockers_words(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter) as info:
        resolve_user(rootfs, "alice:nosuch")
    assert info.value.message == "unable to find group nosuch: no matching entries in group file"


def test_out_of_range_uid_is_refused(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="range"):
        resolve_user(rootfs, "2147483648")


def test_group_add_by_name_and_number_appends_after_member_groups(rootfs: Path) -> None:
    resolved = resolve_user(rootfs, "alice", ["docker", "5000", "video"])
    assert resolved == ResolvedUser(1000, 1000, [1000, 10, 44, 999, 5000])


def test_group_add_unknown_name_is_refused(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter) as info:
        resolve_user(rootfs, "", ["nosuch"])
    # runc's GetAdditionalGroups wording, capital included.
    assert info.value.message == "Unable to find group nosuch"


def test_missing_files_allow_numeric_ids_only(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resolve_user(empty, "") == ResolvedUser(0, 0, [0])
    assert resolve_user(empty, "12:34") == ResolvedUser(12, 34, [34])
    with pytest.raises(InvalidParameter, match="unable to find user nobody"):
        resolve_user(empty, "nobody")


def test_absolute_symlink_is_followed_inside_the_rootfs(tmp_path: Path) -> None:
    # An image whose /etc/passwd points at /etc/shadow must read its own shadow file,
    # never the host's.
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "shadow").write_text("inside:x:77:77::/:/bin/sh\n")
    os.symlink("/etc/shadow", root / "etc" / "passwd")
    assert resolve_user(root, "inside") == ResolvedUser(77, 77, [77])
    with pytest.raises(InvalidParameter):
        resolve_user(root, "root")  # the host's root entry is not visible


def test_dotdot_in_symlinks_cannot_climb_out_of_the_rootfs(tmp_path: Path) -> None:
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd").write_text("escaped:x:5:5::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("../../../../etc/passwd", root / "etc" / "passwd")
    # Clamped at the rootfs, the link names <rootfs>/etc/passwd: itself, a loop.
    with pytest.raises(InvalidParameter, match="too many levels"):
        resolve_user(root, "escaped")


def test_symlinked_directory_is_resolved_within_the_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "real-etc").mkdir(parents=True)
    (root / "real-etc" / "passwd").write_text("svc:x:300:301::/:/bin/sh\n")
    os.symlink("/real-etc", root / "etc")
    assert resolve_user(root, "svc") == ResolvedUser(300, 301, [301])


def test_dangling_symlink_counts_as_missing_file(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("/nowhere/passwd", root / "etc" / "passwd")
    assert read_file_in_root(root, "etc/passwd") is None
    assert resolve_user(root, "7") == ResolvedUser(7, 0, [0])


def test_non_regular_file_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.mkfifo(root / "etc" / "passwd")
    assert read_file_in_root(root, "etc/passwd") is None
