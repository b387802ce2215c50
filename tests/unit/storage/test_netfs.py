"""Which SQLite paths count as being on a network filesystem (no I/O beyond tmp files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.errors import NetworkFilesystemRefused
from storage.netfs import Mount, check_local_filesystem, mount_of, parse_mounts

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
filer:/export /srv/shared nfs4 rw,relatime 0 0
//nas/share /mnt/smb cifs rw 0 0
user@host:/data /mnt/remote fuse.sshfs rw 0 0
sshfs#user@host:/old /mnt/oldfuse fuse rw 0 0
/dev/vdb /srv/shared/local-disk ext4 rw 0 0
host0 /mnt/wsl\\040drive 9p rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/srv/shared/crank.db", "nfs4"),
        ("/srv/shared/local-disk/crank.db", "ext4"),  # a local disk mounted inside the NFS tree
        ("/srv/sharedness/crank.db", "ext4"),  # a name prefix is not a path prefix
        ("/mnt/smb/x/crank.db", "cifs"),
        ("/mnt/wsl drive/crank.db", "9p"),  # \040 in /proc/mounts is a space
        ("/var/lib/crank.db", "ext4"),
    ],
)
def test_longest_mount_point_prefix_decides(path: str, fstype: str) -> None:
    """The mount holding a path is the one with the longest mount point that is a path prefix."""
    mount = mount_of(path, parse_mounts(MOUNTS))
    assert mount is not None and mount.fstype == fstype


def test_malformed_lines_are_skipped() -> None:
    """Short or empty lines in the mounts text do not break parsing."""
    assert parse_mounts("garbage\n\n/dev/vda / ext4 rw 0 0\n") == [Mount("/dev/vda", "/", "ext4")]


@pytest.mark.parametrize(
    ("mount_point", "fstype", "source"),
    [
        ("nfs", "nfs", "filer:/x"),
        ("sshfs", "fuse.sshfs", "u@h:/x"),
        ("oldfuse", "fuse", "sshfs#u@h:/x"),
        ("smb", "smb3", "//nas/x"),
        ("ninep", "9p", "host0"),
    ],
)
def test_network_filesystems_are_refused_with_the_reason(
    tmp_path: Path, mount_point: str, fstype: str, source: str
) -> None:
    """An SQLite path under a network mount is refused; the message names the filesystem and why."""
    mounted = tmp_path / mount_point
    mounts = tmp_path / "mounts"
    mounts.write_text(
        f"/dev/vda / ext4 rw 0 0\n{source} {mounted} {fstype} rw 0 0\n", encoding="utf-8"
    )
    with pytest.raises(NetworkFilesystemRefused) as refused:
        check_local_filesystem(mounted / "not-yet" / "crank.db", mounts)
    assert fstype in str(refused.value)
    assert "locks" in str(refused.value)


def test_local_filesystems_and_unreadable_mount_tables_are_accepted(tmp_path: Path) -> None:
    """A path on ext4 passes, and so does any path when the mounts file cannot be read (not Linux)."""
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\nfiler:/x /elsewhere nfs rw 0 0\n", encoding="utf-8")
    check_local_filesystem(tmp_path / "crank.db", mounts)
    check_local_filesystem(tmp_path / "crank.db", tmp_path / "no-such-mounts-file")
