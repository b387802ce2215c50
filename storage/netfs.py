"""Refuse an SQLite database on a network filesystem.

SQLite's locking relies on POSIX advisory locks and, in WAL mode, on shared
memory between the processes: over NFS, SMB, sshfs and the like, locks are
lost or faked and the shared memory is not shared, so two nodes could both
believe they hold the write lock and corrupt the database or hand one lease
to two holders. The check reads ``/proc/mounts`` and takes the mount whose
mount point is the longest prefix of the database's directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from storage.errors import NetworkFilesystemRefused

__all__ = ["NETWORK_FILESYSTEMS", "Mount", "check_local_filesystem", "mount_of", "parse_mounts"]

PROC_MOUNTS = Path("/proc/mounts")

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "ncpfs",
        "9p",
        "afs",
        "coda",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "davfs",
        "ocfs2",
        "gfs2",
        "sshfs",
        "fuse.sshfs",
        "fuse.glusterfs",
        "fuse.ceph",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.davfs2",
        "fuse.gcsfuse",
        "fuse.juicefs",
        "fuse.cephfs",
        "fuse.smbnetfs",
        "vboxsf",
        "prl_fs",
        "fuse.vmhgfs-fuse",
    }
)

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class Mount(NamedTuple):
    """One line of /proc/mounts."""

    source: str
    mount_point: str
    fstype: str


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as \040 etc.
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    """The mounts listed in a /proc/mounts text; malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append(Mount(_unescape(fields[0]), _unescape(fields[1]), fields[2]))
    return mounts


def _is_under(path: str, mount_point: str) -> bool:
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount holding ``path``: longest mount point that is a prefix, last one wins a tie."""
    best: Mount | None = None
    for mount in mounts:
        if _is_under(path, mount.mount_point) and (
            best is None or len(mount.mount_point) >= len(best.mount_point)
        ):
            best = mount
    return best


def _is_network(mount: Mount) -> bool:
    # Old-style fuse mounts say "fuse" and put the helper in the source: "sshfs#host:/dir".
    helper = mount.source.split("#", 1)[0] if mount.fstype == "fuse" else ""
    return mount.fstype in NETWORK_FILESYSTEMS or helper in NETWORK_FILESYSTEMS


def check_local_filesystem(database: Path, mounts_file: Path = PROC_MOUNTS) -> None:
    """Raise :class:`NetworkFilesystemRefused` if ``database`` sits on a network filesystem.

    Where ``mounts_file`` cannot be read (not Linux), nothing is refused.
    """
    try:
        mounts = parse_mounts(mounts_file.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return
    # realpath follows symlinks through the parts that exist and keeps the rest as is.
    mount = mount_of(os.path.realpath(database.absolute().parent), mounts)
    if mount is not None and _is_network(mount):
        raise NetworkFilesystemRefused(
            f"refusing SQLite database {str(database)!r}: it is on a {mount.fstype} filesystem "
            f"(mounted at {mount.mount_point!r} from {mount.source!r}). SQLite's file locks and "
            "WAL shared memory do not work reliably over a network filesystem, so two nodes "
            "could both hold one lock. Put the database on a local disk, or use PostgreSQL "
            "(--db-url postgresql+psycopg://...)."
        )
