"""The model file: ``snapshot`` + ``write`` (``BaseMLP.save``) and ``load`` (``BaseMLP.load``).

A file is an ``.npz`` archive of plain arrays, nothing pickled:

* ``params``: the flat parameter buffer, with batch norm's running averages;
* ``slots``: the optimizer state, one row per slot;
* ``step``: ``[optimizer step, epochs, mini-batches, dropout key]`` (int64);
* ``unfinished_epoch``: ``[batches run, rows, batch size, shuffled (0 / 1), batches skipped]``
  of an epoch stopped part-way (Ctrl-C, a non-finite batch; the next ``fit`` goes on with
  it), all 0 between epochs (int64); ``unfinished_epoch_loss``: ``[sum of its applied
  batches' loss x rows]`` (float64);
* ``rng_state``: the model's generator state, JSON as bytes (at the start of the unfinished
  epoch, if any: its order is drawn again);
* ``header``: JSON as bytes: ``format`` (``FORMAT_NAME``), ``version`` (``FORMAT_VERSION``),
  the model's ``config`` and a CRC32 ``crc32`` of each of the other arrays;
* optionally, arrays the caller attaches (``save(model, path, extra)``; the command line keeps
  its scaler and labels there): each stored as ``extra.<name>``, checksummed like the others,
  their names listed in the header's ``extra``.  ``load`` verifies and ignores them (so a
  file with extras loads as a plain model, also in a fastbp that predates them);
  ``load_with_extra`` returns them too.

Either implementation reads the other's files.  Version 1 (before ``unfinished_epoch``: a
saved model was always between epochs) is read too; version 2 is written, so that an older
fastbp refuses a file it would misread rather than lose the epoch in progress.

``load`` trusts nothing in a file: it holds exactly the arrays its header lists, each of the
size its configuration implies (known before anything is decompressed), each matching its
checksum, and what ``set_state`` would refuse it refuses too.
"""

import contextlib
import errno
import io
import json
import math
import os
import re
import stat
import time
import zipfile
import zlib

import numpy as np

from .layout import model_layer_table, state_views
from .optimizers import optimizer_from_config
from .validation import as_float_array, check_config, check_optimizer_state, check_state

FORMAT_NAME = "fastbp-mlp"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
# The arrays every file of a version has (besides the header), each with its checksum.
_REQUIRED = {1: ("params", "slots", "step", "rng_state"),
             2: ("params", "slots", "step", "unfinished_epoch", "unfinished_epoch_loss", "rng_state")}
# The state record's fields in ``unfinished_epoch``; the rows its loss sum counts follow from
# them (every batch before the last is full: ``(batches run - skipped) x batch size``).
_UNFINISHED = ("batch", "samples", "batch_size", "shuffled", "skipped")


def _crc32(array):
    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8))


def write(path, arrays):
    """Write the arrays of a ``snapshot`` to the ``.npz`` file ``path``: to a temporary file in
    the same directory, flushed, fsynced and renamed over ``path``, so an interrupted save
    never destroys an older file."""
    _write_atomically(os.fsdecode(os.fspath(path)), arrays)  # str or bytes paths


def save(model, path, extra=None):
    """``model.save(path)``, with the arrays of ``extra`` (a dict: name -> array-like) stored in
    the file too, read back by ``load_with_extra``.  Names are 1 to 64 letters, digits, ``_``,
    ``-`` or ``.``; arrays hold numbers, booleans or strings (nothing pickled); both are checked
    before anything is written."""
    with model._access.reading():  # a consistent copy; written to disk outside the lock
        arrays = snapshot(model, extra)
    write(path, arrays)


def snapshot(model, extra=None):
    """The arrays of ``model``'s file, copied (the caller holds the model's read lock), with
    the arrays of ``extra`` (name -> array) under their ``extra.`` names."""
    begun = model._field("batch") > 0  # else what the fields say of the last epoch is no state
    arrays = {"params": model._params_ext.copy(), "slots": model._slots.copy(),
              "step": np.array([model._step, model._epoch, model._batches, model._dropout_key], dtype=np.int64),
              "unfinished_epoch": np.array([model._field(k) if begun else 0 for k in _UNFINISHED], dtype=np.int64),
              "unfinished_epoch_loss": np.array([model._fields["loss_sum"][0] if begun else 0.0], dtype=np.float64),
              "rng_state": np.frombuffer(json.dumps(model._rng.bit_generator.state).encode(), dtype=np.uint8)}
    extra = _extra_arrays(extra)
    arrays.update({_EXTRA_PREFIX + name: value for name, value in extra.items()})
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": model.get_config(),
              "crc32": {k: _crc32(v) for k, v in arrays.items()}}
    if extra:
        header["extra"] = list(extra)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    if arrays["header"].size > MAX_HEADER_BYTES:  # load would refuse the file
        raise ValueError(f"the model's configuration and extra array names take {arrays['header'].size} bytes; "
                         f"a model file holds at most {MAX_HEADER_BYTES}")
    return arrays


# Attached arrays: stored as "extra.<name>" (no required array's name has a dot).
_EXTRA_PREFIX = "extra."
_EXTRA_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_EXTRA_KINDS = "biufcSU"  # booleans, integers, floats, complex, bytes, str: no objects


def _extra_arrays(extra):
    """``extra`` (None or a dict: name -> array-like) checked: a dict of contiguous arrays.
    ``TypeError`` / ``ValueError`` for a bad name or an array that would need pickling."""
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict of name -> array, got {type(extra).__name__}")
    checked = {}
    for name, value in extra.items():
        if not isinstance(name, str) or not _EXTRA_NAME.fullmatch(name):
            raise ValueError(f"extra array name {name!r}: use 1 to 64 letters, digits, '_', '-' or '.'")
        array = np.array(value, order="C")  # a copy, of any shape (0-d too)
        if array.dtype.kind not in _EXTRA_KINDS:
            raise TypeError(f"extra array {name!r} has dtype {array.dtype}: only numbers, booleans and strings "
                            "are stored (nothing is pickled)")
        checked[name] = array
    return checked


# Temporaries are named ".fastbp-*.tmp"; one untouched for this long belongs to no live writer
# (a writer touches it with every write, then renames it at once) and is swept away.
_TMP_PREFIX, _TMP_SUFFIX = ".fastbp-", ".tmp"
STALE_TEMPORARY_SECONDS = 3600


def _write_atomically(path, arrays):
    """``np.savez`` to a temporary file next to ``path``, fsynced, then renamed over it; the
    temporary file is removed if anything fails (or is interrupted) before the rename.

    Where the platform can (Linux ``O_TMPFILE``), the temporary has no name while it is
    written and is linked into the directory only to be renamed over ``path``: a process
    killed while writing leaves nothing behind.  Stale named temporaries of earlier, killed
    writers are swept away first (``remove_stale_temporaries``).

    The file's permissions are those ``np.savez(path)`` would give it: a new file gets
    ``0o666 & ~umask`` (the temporary is created with mode 0o666, which the system masks
    with the umask, as ``open`` does), a file replaced keeps its permission bits.  As
    ``np.savez(path)`` would, a save to a symbolic link writes where it leads (the link stays,
    its target is replaced: ``_link_target``); unlike a rename, it refuses a file the one
    saving may not write (``_replaced_mode``).
    """
    path = _link_target(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(directory)
    mode = _replaced_mode(path)
    fd, tmp = _unnamed_temporary(directory)
    if fd is None:
        fd, tmp = _named_temporary(directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None and os.chmod in os.supports_fd:
                os.chmod(f.fileno(), mode)
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
            if tmp is None:  # give the unnamed file a name, then rename it over path
                tmp = _link_temporary(f.fileno(), directory)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _link_target(path):
    """The file a save to ``path`` replaces: ``path``, or the file the symbolic link at
    ``path`` leads to (through any chain of links; it need not exist yet).  A rename over
    ``path`` itself would turn the link into a regular file and leave its target as it was."""
    if not os.path.islink(path):
        return path
    target = os.path.realpath(path)
    if os.path.islink(target):  # the links go round in a loop
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    return target


def _replaced_mode(path):
    """The permission bits of the regular file at ``path`` (which the save replaces), or None.

    ``PermissionError`` if the one saving may not write the file: a rename needs only the
    directory's permission, and would replace a file made read-only, which writing it in
    place (``np.savez``, ``cp`` without ``-f``) refuses.  Root, whom file modes do not stop,
    is refused a file whose owner may not write it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    root = getattr(os, "geteuid", lambda: -1)() == 0
    if not (st.st_mode & stat.S_IWUSR if root else os.access(path, os.W_OK)):
        raise PermissionError(errno.EACCES, f"the file is read-only (mode {stat.S_IMODE(st.st_mode):o}): a save does "
                                            "not replace it; make it writable or remove it first", path)
    return stat.S_IMODE(st.st_mode) & 0o777


def _temporary_name():
    return f"{_TMP_PREFIX}{os.urandom(6).hex()}{_TMP_SUFFIX}"


def _unnamed_temporary(directory):
    """``(fd, None)`` of an unnamed file in ``directory`` (``O_TMPFILE``, mode 0o666 less the
    umask), or ``(None, None)`` where the platform or the file system has none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):  # linking it needs /proc
        return None, None
    try:
        return os.open(directory, flag | os.O_WRONLY, 0o666), None
    except OSError:  # e.g. a file system without O_TMPFILE support
        return None, None


def _named_temporary(directory):
    """``(fd, path)`` of a new temporary file in ``directory``, created exclusively with mode
    0o666 less the umask (``tempfile.mkstemp`` would make it 0o600, and the rename keeps it)."""
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_BINARY", 0))
    for _ in range(100):
        tmp = os.path.join(directory, _temporary_name())
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: could not name a temporary file")


def _link_temporary(fd, directory):
    """Link the unnamed file ``fd`` into ``directory`` under a fresh temporary name (linkat
    following ``/proc/self/fd/N``; giving a directory fd makes Python call linkat, not link)."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        for _ in range(100):
            name = _temporary_name()
            try:
                os.link(f"/proc/self/fd/{fd}", name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=True)
                return os.path.join(directory, name)
            except FileExistsError:
                continue
    finally:
        os.close(dir_fd)
    raise FileExistsError(f"{directory}: could not name a temporary file")


def remove_stale_temporaries(directory, age=STALE_TEMPORARY_SECONDS):
    """Remove this module's temporary files in ``directory`` that nobody has written to for
    ``age`` seconds (left by writers that were killed); never fails."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    now = time.time()
    for name in names:
        if name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX):
            tmp = os.path.join(directory, name)
            try:
                if now - os.stat(tmp, follow_symlinks=False).st_mtime > age:
                    os.unlink(tmp)
            except OSError:
                pass  # gone already, or not ours to remove


def load(cls, path):
    """Rebuild a model of class ``cls`` from a file written by ``save`` (by either implementation).

    Every problem with the file is a ``ValueError`` naming ``path`` (a missing file stays
    ``FileNotFoundError``).  Nothing is decompressed before its size is known to be what the
    header implies (``_load``); the checksums are verified, and the contents checked as
    ``set_state`` checks them, before anything is built.  Arrays attached by ``save(model,
    path, extra)`` are verified without being kept (``load_with_extra`` returns them).
    """
    path = os.fsdecode(os.fspath(path))  # str or bytes paths
    remove_stale_temporaries(os.path.dirname(os.path.abspath(path)))
    return _load(cls, path, path, keep_extra=False)[0]


def load_with_extra(cls, path):
    """``(model, extra)``: ``load``'s model, and the arrays attached by ``save(model, path,
    extra)`` (a dict: name -> array; empty for a file without), checksums verified."""
    path = os.fsdecode(os.fspath(path))  # str or bytes paths
    remove_stale_temporaries(os.path.dirname(os.path.abspath(path)))
    return _load(cls, path, path, keep_extra=True)


def to_bytes(arrays):
    """The arrays of a ``snapshot`` as the bytes of a model file (what pickling a model
    stores: ``BaseMLP.__reduce__``)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def from_bytes(cls, data):
    """A ``cls`` model from the bytes ``to_bytes`` made (checked as ``load`` checks a file)."""
    return _load(cls, io.BytesIO(data), "pickled fastbp model", keep_extra=False)[0]


# No configuration implies the size of the header (a few values per layer and per attached
# array) or of the generator state (PCG64's is ~150 bytes): bounds far beyond any real file
# keep a forged one from being decompressed into gigabytes (``snapshot`` refuses to write a
# larger header).
MAX_HEADER_BYTES = 1 << 24
_MAX_RNG_STATE_BYTES = 1 << 12
# Every count in ``step`` and ``unfinished_epoch`` is below this: beyond any training run, and
# far enough from int64's end that the steps a later fit adds cannot overflow the kernels'
# state record (the dropout key is drawn below it too).
_COUNT_LIMIT = 2**62
_STEP_COUNTS = ("optimizer step", "epoch count", "mini-batch count", "dropout key")
# Members are read in blocks of this many bytes.
_BLOCK = 1 << 20
# What the dtype kinds an array may have (``_Member.expect``) are called in messages.
_KIND_NAMES = {"f": "floating-point numbers", "iu": "integers", "u": "bytes",
               _EXTRA_KINDS: "numbers, booleans or strings"}


def _load(cls, source, path, keep_extra):
    """``(model, extra)`` from ``source`` (a path or a binary file object), named ``path`` in
    errors; ``extra`` empty unless ``keep_extra`` (the attached arrays are then read, else
    only their checksums computed, block by block).

    Nothing is decompressed before it is known to be small or what the header implies: the
    archive's member list first (no unknown or repeated member), then the header (of bounded
    size), then each member's array header (its first bytes) against the shape and dtype the
    saved configuration implies and against the member's size; only then the arrays.
    """
    with _open_archive(source, path) as archive:
        try:
            members = _members(archive)
        except ValueError as exc:
            raise ValueError(f"{path}: not a valid fastbp model file ({exc})") from None
        header = _read_header(path, archive, members)
        try:
            saved = _saved_model(header["config"])
            arrays, extra = _read_arrays(archive, members, header, saved, keep_extra)
            if header["version"] == 1:  # saved between epochs
                arrays["unfinished_epoch"] = np.zeros(len(_UNFINISHED), dtype=np.int64)
                arrays["unfinished_epoch_loss"] = np.zeros(1)
            params, slots, rng_state = _check_contents(saved, arrays)  # before a model is allocated
            model = _build(cls, header["config"])
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ValueError(f"{path}: not a valid fastbp model file ({exc})") from None
    model._rng.bit_generator.state = rng_state
    model._params_ext[...] = params
    model._slots[...] = slots
    model._step, model._epoch, model._batches, model._dropout_key = (int(v) for v in arrays["step"])
    for key, value in zip(_UNFINISHED, arrays["unfinished_epoch"]):
        model._fields[key][0] = value
    batch, _, batch_size, _, skipped = (int(v) for v in arrays["unfinished_epoch"])
    model._fields["counted"][0] = (batch - skipped) * batch_size
    model._fields["loss_sum"][0] = arrays["unfinished_epoch_loss"][0]
    return model, extra


def _open_archive(source, path):
    """The zip archive ``source`` (only its list of members is read)."""
    try:
        return zipfile.ZipFile(source)
    except FileNotFoundError:
        raise
    except Exception as exc:  # not a zip file, a directory, a damaged member list ...
        raise ValueError(f"{path}: not a readable fastbp model file ({type(exc).__name__}: {exc})") from None


def _members(archive):
    """The archive's members by array name (``np.savez`` stores array ``k`` as ``k.npy``).
    A name met twice (a member appended under a name already there: the zip's last one
    wins) or a member that is no array is refused."""
    members = {}
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            raise ValueError(f"the archive holds {name!r}, which is not an array")
        if name[:-4] in members:
            raise ValueError(f"the archive holds {name!r} twice")
        members[name[:-4]] = info
    return members


class _Counted:
    """A file object's ``read``, counting the bytes read (where a member's data starts)."""

    def __init__(self, f):
        self.f, self.count = f, 0

    def read(self, size=-1):
        data = self.f.read(size)
        self.count += len(data)
        return data


class _Member:
    """An array member of the archive: its array header (``shape``, ``dtype``), read from the
    member's first bytes and checked against the member's size, and its data read later."""

    def __init__(self, archive, name, info):
        self.archive, self.name, self.info = archive, name, info
        with _reading(name, "its array header"):
            with archive.open(info) as f:
                counted = _Counted(f)
                version = np.lib.format.read_magic(counted)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f"npy format version {version[0]}.{version[1]}, which np.savez does not write")
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                self.shape, fortran_order, self.dtype = read_header(counted)
        self.offset = counted.count  # where the data starts
        if self.dtype.hasobject:
            raise ValueError(f"array {name!r} holds Python objects (a model file pickles nothing)")
        if fortran_order:
            raise ValueError(f"array {name!r} is stored in Fortran order, which save never writes")
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        if info.file_size != self.offset + self.nbytes:
            raise ValueError(f"array {name!r}: its member holds {info.file_size} bytes where its array header "
                             f"({self.shape}, {self.dtype}) implies {self.offset + self.nbytes}")

    def expect(self, kinds, shape=None, max_bytes=None):
        """Refuse a dtype whose kind is not one of ``kinds`` (letters, as ``dtype.kind``), a
        shape other than ``shape`` (any, when None), and (``max_bytes``) anything but a 1-D
        ``uint8`` array of at most that many bytes."""
        if self.dtype.kind not in kinds:
            raise ValueError(f"array {self.name!r} has dtype {self.dtype}; it must hold {_KIND_NAMES[kinds]}")
        if shape is not None and self.shape != shape:
            raise ValueError(f"array {self.name!r} has shape {self.shape}; the saved configuration needs {shape}")
        if max_bytes is not None and (self.dtype != np.uint8 or len(self.shape) != 1):
            raise ValueError(f"array {self.name!r} has shape {self.shape} and dtype {self.dtype}; it must be bytes "
                             "(1-D uint8)")
        if max_bytes is not None and self.shape[0] > max_bytes:
            raise ValueError(f"array {self.name!r} holds {self.shape[0]} bytes; a model file's holds at most "
                             f"{max_bytes}")

    def read(self, keep=True):
        """``(array, crc32)``: the data read in blocks (into an array of the checked header's
        shape when ``keep``, else None: only its checksum is computed)."""
        array = np.empty(self.shape, self.dtype) if keep else None
        flat = array.reshape(-1).view(np.uint8) if keep else None
        done = crc = 0
        with _reading(self.name, "its data"):
            with self.archive.open(self.info) as f:
                f.read(self.offset)
                while done < self.nbytes:
                    block = f.read(min(_BLOCK, self.nbytes - done))
                    if not block:
                        raise ValueError(f"array {self.name!r} ends after {done} of its {self.nbytes} bytes")
                    crc = zlib.crc32(block, crc)
                    if keep:
                        flat[done:done + len(block)] = np.frombuffer(block, dtype=np.uint8)
                    done += len(block)
                f.read()  # to the member's end: the zip's own checks
        return array, crc


@contextlib.contextmanager
def _reading(name, part):
    """What the zip module and NumPy raise for a damaged member (``BadZipFile``, ``EOFError``,
    ``zlib.error`` ...) as a ``ValueError`` naming the array; ``ValueError`` and
    ``MemoryError`` pass as they are."""
    try:
        yield
    except (ValueError, MemoryError):
        raise
    except Exception as exc:
        raise ValueError(f"array {name!r}: {part} cannot be read ({type(exc).__name__}: {exc})") from None


def _read_header(path, archive, members):
    """The header (a dict of this format and a readable version), read after its size is
    checked; ``ValueError`` naming ``path`` for a file without one."""
    try:
        if "header" not in members:
            raise ValueError("it has no header")
        member = _Member(archive, "header", members["header"])
        member.expect("u", max_bytes=MAX_HEADER_BYTES)
        header = json.loads(member.read()[0].tobytes().decode())
    except ValueError as exc:  # (JSON's and UTF-8's errors are ValueErrors)
        raise ValueError(f"{path}: not a fastbp model file (no valid header: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a fastbp model file")
    version = header.get("version")
    # JSON's true and 2.0 compare equal to 1 and 2: the version must be the integer itself
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise ValueError(f"{path}: file format version {version!r} is not supported "
                         f"(this fastbp reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    return header


def _listed_arrays(header, members):
    """The names of the arrays the header lists (its version's, then the attached ones), each
    with a checksum and present in the archive; the archive holds nothing else."""
    checksums = header.get("crc32")
    if not isinstance(checksums, dict) or not all(type(crc) is int for crc in checksums.values()):
        raise ValueError("the header's checksums are missing or malformed")
    names = header.get("extra", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _EXTRA_NAME.fullmatch(n) for n in names):
        raise ValueError("the header's list of extra arrays is malformed")
    for name in names:
        if _EXTRA_PREFIX + name not in checksums:
            raise ValueError(f"extra array {name!r} has no checksum")
    listed = list(_REQUIRED[header["version"]]) + [_EXTRA_PREFIX + name for name in names]
    for key in listed:
        if key not in checksums or key not in members:
            raise ValueError(f"array {key!r} is missing; the file is truncated or corrupt")
    for key in checksums:
        if key not in listed:
            raise ValueError(f"the header has a checksum of {key!r}, an array no model file holds")
    for key in members:
        if key != "header" and key not in listed:
            raise ValueError(f"the archive holds {key!r}, an array the header does not list")
    return listed


def _read_arrays(archive, members, header, saved, keep_extra):
    """``(arrays, extra)``: the required arrays, and the attached ones (when ``keep_extra``),
    each read only after every member's array header has been checked against what the
    header implies, and each compared with its checksum."""
    checked, layers, n_params, n_running = saved
    specs = {"params": ("f", (n_params + n_running,)), "slots": ("f", (checked["optimizer"].n_slots, n_params)),
             "step": ("iu", (len(_STEP_COUNTS),)), "unfinished_epoch": ("iu", (len(_UNFINISHED),)),
             "unfinished_epoch_loss": ("f", (1,)), "rng_state": ("u", None)}
    listed = _listed_arrays(header, members)
    arrays, extra = {}, {}
    pending = []
    for key in listed:
        member = _Member(archive, key, members[key])
        if key in specs:
            kinds, shape = specs[key]
            member.expect(kinds, shape, max_bytes=_MAX_RNG_STATE_BYTES if key == "rng_state" else None)
        else:
            member.expect(_EXTRA_KINDS)
        pending.append(member)
    for member in pending:
        keep = member.name in specs or keep_extra
        array, crc = member.read(keep)
        if crc != header["crc32"][member.name]:
            raise ValueError(f"checksum mismatch in {member.name!r}; the file is corrupt")
        if member.name in specs:
            arrays[member.name] = array
        elif keep:
            extra[member.name[len(_EXTRA_PREFIX):]] = array
    return arrays, extra


def _saved_model(config):
    """``(checked, layers, n_params, n_running)``: the saved configuration checked as the
    constructor checks it (``validation.check_config``), and its layer table."""
    cfg = dict(config)
    optimizer = optimizer_from_config(cfg.pop("optimizer"), cfg.pop("optimizer_config"))
    checked = check_config(optimizer=optimizer, **cfg)
    layers, n_params, n_running = model_layer_table(checked["sizes"], checked["activations"], checked["output"],
                                                    checked["batch_norm"], checked["dropout"])
    return checked, layers, n_params, n_running


def _check_contents(saved, arrays):
    """``(params, slots, generator state)``: the arrays checked before a model is allocated.
    The parameters pass ``set_state``'s checks (``validation.check_state``: finite in the
    model's dtype, running variances >= 0), the optimizer state its own
    (``validation.check_optimizer_state``); counts are integers in [0, 2**62), the unfinished
    epoch fits them, and the generator state is one PCG64 takes."""
    checked, layers, _, _ = saved
    dtype, optimizer = checked["dtype"], checked["optimizer"]
    with np.errstate(over="ignore"):  # a value too large for the dtype becomes inf: check_state refuses it
        params = as_float_array(arrays["params"], "the parameters", dtype)
    views = state_views(layers, params)
    try:
        check_state(views, {name: view.shape for name, view in views.items()}, dtype)
    except ValueError as exc:
        raise ValueError(f"the saved parameters fail set_state's checks: {exc}") from None
    slots = check_optimizer_state(optimizer, arrays["slots"], dtype)
    for key, names in (("step", _STEP_COUNTS), ("unfinished_epoch", _UNFINISHED)):
        for name, value in zip(names, arrays[key]):
            if not 0 <= value < _COUNT_LIMIT:
                raise ValueError(f"the {name} in {key!r} is {int(value)}; the counts must be integers in "
                                 f"[0, 2**62)")
    _check_unfinished_epoch(arrays["step"], arrays["unfinished_epoch"], arrays["unfinished_epoch_loss"])
    try:
        state = json.loads(arrays["rng_state"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("the random generator's state is not valid JSON") from None
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError("the random generator's state is not a PCG64 state")
    generator = np.random.PCG64()
    try:
        generator.state = state
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"the random generator's state is not one PCG64 takes ({type(exc).__name__}: "
                         f"{exc})") from None
    return params, slots, generator.state


def _check_unfinished_epoch(step, unfinished, loss):
    """The unfinished epoch (``unfinished_epoch``, ``unfinished_epoch_loss``) is none (all 0),
    or one stopped part-way that the next fit can go on with: fewer batches run than its rows
    make, no more skipped than run, no more run than the file's mini-batch count."""
    batch, samples, batch_size, shuffled, skipped = (int(v) for v in unfinished)
    if not np.isfinite(loss).all():
        raise ValueError("array 'unfinished_epoch_loss' must hold a finite floating-point number")
    if batch == 0:
        if samples or batch_size or shuffled or skipped or loss[0] != 0:
            raise ValueError("'unfinished_epoch' runs no batches, yet it or 'unfinished_epoch_loss' holds other "
                             "values: between epochs they are all 0")
        return
    n_optimizer_steps, _, n_batches_run, _ = (int(v) for v in step)
    problems = [
        (samples < 1 or not 1 <= batch_size <= samples, f"its batch size {batch_size} for {samples} rows"),
        (batch >= -(-samples // max(batch_size, 1)), f"{batch} batches run of an epoch of "
                                                     f"{-(-samples // max(batch_size, 1))}"),
        (shuffled not in (0, 1), f"its shuffle flag {shuffled}"),
        (skipped > batch, f"{skipped} batches skipped of {batch} run"),
        (batch > n_batches_run, f"{batch} batches run, more than the {n_batches_run} mini-batches counted"),
        (batch - skipped > n_optimizer_steps, f"{batch - skipped} batches applied, more than the "
                                              f"{n_optimizer_steps} optimizer steps"),
    ]
    for bad, what in problems:
        if bad:
            raise ValueError(f"the unfinished epoch is inconsistent: {what}")


def _build(cls, config):
    """A fresh ``cls`` model of the saved configuration."""
    cfg = dict(config)
    optimizer = optimizer_from_config(cfg.pop("optimizer"), cfg.pop("optimizer_config"))
    return cls(cfg.pop("sizes"), optimizer=optimizer, **cfg)
