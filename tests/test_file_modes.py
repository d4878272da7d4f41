"""Saved files get the permissions ``np.savez`` would give them: ``0o666 & ~umask`` for a new
file, the old permission bits for a file replaced (a temporary file used to make every save
0o600 whatever the umask) — and saving stays atomic: temporary, fsync, rename, nothing left
behind on failure.  A symbolic link is followed and a read-only file is not replaced.
Through the unnamed temporary (Linux ``O_TMPFILE``) and the named one."""

import os
import re
import stat
import sys

import numpy as np
import pytest

import fastbp.reference as fb
from fastbp import fileformat

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture(params=["unnamed", "named"])
def temporary(request, monkeypatch, tmp_path):
    """Which temporary file the save writes: Linux's unnamed ``O_TMPFILE`` one (skipped where
    there is none) or the named one every platform has."""
    if request.param == "named":
        monkeypatch.setattr(fileformat, "_unnamed_temporary", lambda directory: (None, None))
        return request.param
    fd, _ = fileformat._unnamed_temporary(str(tmp_path))
    if fd is None:
        pytest.skip("no O_TMPFILE on this platform / file system")
    os.close(fd)
    return request.param


class Umask:
    def __init__(self, mask):
        self.mask = mask

    def __enter__(self):
        self.old = os.umask(self.mask)

    def __exit__(self, *exc):
        os.umask(self.old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o027])
def test_a_new_file_honours_the_umask(tmp_path, temporary, umask):
    model = fb.MLP([3, 4, 2], seed=0)
    with Umask(umask):
        model.save(tmp_path / "model.npz")
        np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    assert mode(tmp_path / "model.npz") == 0o666 & ~umask == mode(tmp_path / "plain.npz")
    assert sorted(os.listdir(tmp_path)) == ["model.npz", "plain.npz"]
    np.testing.assert_array_equal(fb.load(tmp_path / "model.npz").get_weights()[0][0], model.get_weights()[0][0])


@pytest.mark.parametrize("old_mode", [0o600, 0o640, 0o664])
def test_a_replaced_file_keeps_its_permissions(tmp_path, temporary, old_mode):
    path = tmp_path / "model.npz"
    fb.MLP([3, 4, 2], seed=0).save(path)
    os.chmod(path, old_mode)
    with Umask(0o022):
        fb.MLP([3, 4, 2], seed=1).save(path)
    assert mode(path) == old_mode
    assert os.listdir(tmp_path) == ["model.npz"]


def test_the_save_is_still_fsynced_before_the_rename(tmp_path, temporary, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    fb.MLP([3, 4, 2], seed=0).save(tmp_path / "model.npz")
    assert events == ["fsync", "replace"]


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, temporary, monkeypatch):
    path = tmp_path / "model.npz"
    fb.MLP([3, 4, 2], seed=0).save(path)
    os.chmod(path, 0o640)
    before = path.read_bytes()

    def failing_savez(file, **arrays):
        file.write(b"x" * 1000)
        raise OSError("disk full")

    monkeypatch.setattr(fileformat.np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        fb.MLP([3, 4, 2], seed=1).save(path)
    assert os.listdir(tmp_path) == ["model.npz"] and path.read_bytes() == before and mode(path) == 0o640


def weights_of(path):
    return fb.load(path).get_weights()[0][0]


@pytest.mark.parametrize("link", ["absolute", "relative", "chain", "dangling"])
def test_a_save_to_a_symbolic_link_replaces_its_target(tmp_path, temporary, link):
    """As ``np.savez(path)`` (``open``) would: the link stays a link, the file it leads to is
    replaced (atomically, its permission bits kept; a new one when the link dangles), and no
    temporary is left in either directory."""
    real, links = tmp_path / "real", tmp_path / "links"
    real.mkdir(), links.mkdir()
    target = real / "model.npz"
    if link != "dangling":
        fb.MLP([3, 4, 2], seed=0).save(target)
        os.chmod(target, 0o640)
    to = {"absolute": target, "relative": os.path.join("..", "real", "model.npz"), "dangling": target,
          "chain": links / "first.npz"}[link]
    if link == "chain":
        os.symlink(target, links / "first.npz")
    os.symlink(to, links / "model.npz")
    model = fb.MLP([3, 4, 2], seed=1)
    with Umask(0o022):
        model.save(links / "model.npz")
    assert os.path.islink(links / "model.npz") and os.readlink(links / "model.npz") == os.fspath(to)
    assert mode(target) == (0o644 if link == "dangling" else 0o640)
    np.testing.assert_array_equal(weights_of(target), model.get_weights()[0][0])
    assert os.listdir(real) == ["model.npz"]
    assert sorted(os.listdir(links)) == (["first.npz", "model.npz"] if link == "chain" else ["model.npz"])


@pytest.mark.parametrize("read_only", [0o444, 0o400, 0o440, "through-a-link"])
def test_a_read_only_file_is_not_replaced(tmp_path, temporary, read_only):
    """A save refuses a file its user may not write (``PermissionError`` naming it), as writing
    it in place would, although renaming over it needs only the directory's permission; the
    file stays as it was.  Root, whom modes do not stop, is refused it too (the owner's write
    bit is checked): the tests run as root as well as not."""
    path = tmp_path / "model.npz"
    old = fb.MLP([3, 4, 2], seed=0)
    old.save(path)
    os.chmod(path, 0o444 if read_only == "through-a-link" else read_only)
    before, bits = path.read_bytes(), mode(path)
    if read_only == "through-a-link":
        os.symlink(path, tmp_path / "link.npz")
    with pytest.raises(PermissionError, match=r"read-only .*" + re.escape(repr(os.fspath(path)))):
        fb.MLP([3, 4, 2], seed=1).save(tmp_path / ("link.npz" if read_only == "through-a-link" else "model.npz"))
    assert path.read_bytes() == before and mode(path) == bits
    assert sorted(os.listdir(tmp_path)) == (["link.npz", "model.npz"] if read_only == "through-a-link"
                                            else ["model.npz"])
    os.chmod(path, 0o644)  # writable again: saved over as before
    fb.MLP([3, 4, 2], seed=1).save(path)
    assert not np.array_equal(weights_of(path), old.get_weights()[0][0])
