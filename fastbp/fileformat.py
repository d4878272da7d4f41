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
"""

import io
import json
import os
import re
import stat
import time
import zlib

import numpy as np

from .layout import model_layer_table
from .optimizers import optimizer_from_config
from .validation import check_config

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
    with the umask, as ``open`` does), a file replaced keeps its permission bits.
    """
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


def _replaced_mode(path):
    """The permission bits of the regular file at ``path`` (which the save replaces), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) & 0o777 if stat.S_ISREG(st.st_mode) else None


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
    ``FileNotFoundError``); the checksums are verified before anything is built.  Arrays
    attached by ``save(model, path, extra)`` are verified and left out (``load_with_extra``).
    """
    return load_with_extra(cls, path)[0]


def load_with_extra(cls, path):
    """``(model, extra)``: ``load``'s model, and the arrays attached by ``save(model, path,
    extra)`` (a dict: name -> array; empty for a file without), checksums verified."""
    path = os.fsdecode(os.fspath(path))  # str or bytes paths
    remove_stale_temporaries(os.path.dirname(os.path.abspath(path)))
    return _load(cls, path, path)


def to_bytes(arrays):
    """The arrays of a ``snapshot`` as the bytes of a model file (what pickling a model
    stores: ``BaseMLP.__reduce__``)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def from_bytes(cls, data):
    """A ``cls`` model from the bytes ``to_bytes`` made (checked as ``load`` checks a file)."""
    return _load(cls, io.BytesIO(data), "pickled fastbp model")[0]


def _load(cls, source, path):
    """``load`` from ``source`` (a path or a binary file object), named ``path`` in errors."""
    arrays = _read_arrays(source, path)
    header = _read_header(path, arrays)
    try:
        _verify_checksums(header["crc32"], arrays, _REQUIRED[header["version"]])
        if header["version"] == 1:  # saved between epochs
            arrays["unfinished_epoch"] = np.zeros(len(_UNFINISHED), dtype=np.int64)
            arrays["unfinished_epoch_loss"] = np.zeros(1)
        extra = _read_extra(header, arrays)
        rng_state = _check_contents(header["config"], arrays)  # before anything is allocated
        model = _build(cls, header["config"], arrays)
        model._rng.bit_generator.state = rng_state
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not a valid fastbp model file ({exc})") from None
    model._params_ext[...] = arrays["params"]
    model._slots[...] = arrays["slots"]
    model._step, model._epoch, model._batches, model._dropout_key = (int(v) for v in arrays["step"])
    for key, value in zip(_UNFINISHED, arrays["unfinished_epoch"]):
        model._fields[key][0] = value
    batch, _, batch_size, _, skipped = (int(v) for v in arrays["unfinished_epoch"])
    model._fields["counted"][0] = (batch - skipped) * batch_size
    model._fields["loss_sum"][0] = arrays["unfinished_epoch_loss"][0]
    return model, extra


def _read_extra(header, arrays):
    """The attached arrays the header lists, each one checksummed (``_verify_checksums``
    has compared every checksummed array already)."""
    names = header.get("extra", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _EXTRA_NAME.fullmatch(n) for n in names):
        raise ValueError("the header's list of extra arrays is malformed")
    for name in names:
        if _EXTRA_PREFIX + name not in header["crc32"]:
            raise ValueError(f"extra array {name!r} has no checksum")
    return {name: arrays[_EXTRA_PREFIX + name] for name in names}


def _read_arrays(source, path):
    """Every array of the archive ``source`` (named ``path``), read into memory."""
    try:
        with np.load(source, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: not a readable fastbp model file ({type(exc).__name__}: {exc})") from None


def _read_header(path, arrays):
    """The header, popped from ``arrays``: a dict of this format and version."""
    try:
        header = json.loads(arrays.pop("header").tobytes().decode())
    except Exception:
        raise ValueError(f"{path}: not a fastbp model file (no valid header)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a fastbp model file")
    if header.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"{path}: file format version {header.get('version')!r} is not supported "
                         f"(this fastbp reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    return header


def _verify_checksums(checksums, arrays, required):
    """Every ``required`` array is present, and every array the header lists matches its CRC32."""
    for key in required:
        if key not in checksums or key not in arrays:
            raise ValueError(f"array {key!r} is missing; the file is truncated or corrupt")
    for key, crc in checksums.items():
        if key not in arrays:
            raise ValueError(f"array {key!r} is missing; the file is truncated or corrupt")
        if _crc32(arrays[key]) != crc:
            raise ValueError(f"checksum mismatch in {key!r}; the file is corrupt")


def _check_contents(config, arrays):
    """The arrays against the saved configuration, before a model of it is allocated (a
    forged header must not make ``load`` allocate what the file does not hold): shapes,
    finite parameters and optimizer state, non-negative integer counts, an unfinished epoch
    that fits its counts, a PCG64 generator state.  Returns that state."""
    cfg = dict(config)
    optimizer = optimizer_from_config(cfg.pop("optimizer"), cfg.pop("optimizer_config"))
    checked = check_config(optimizer=optimizer, **cfg)
    _, n_params, n_running = model_layer_table(checked["sizes"], checked["activations"], checked["output"],
                                               checked["batch_norm"], checked["dropout"])
    expected = {"params": (n_params + n_running,), "slots": (optimizer.n_slots, n_params), "step": (4,),
                "unfinished_epoch": (len(_UNFINISHED),), "unfinished_epoch_loss": (1,)}
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise ValueError(f"array {key!r} has shape {arrays[key].shape}; the saved configuration needs {shape}")
    for key in ("params", "slots"):
        if arrays[key].dtype.kind != "f" or not np.isfinite(arrays[key]).all():
            raise ValueError(f"array {key!r} must hold finite floating-point numbers")
    for key in ("step", "unfinished_epoch"):
        if arrays[key].dtype.kind not in "iu" or (arrays[key] < 0).any():
            raise ValueError(f"the counts in {key!r} must be non-negative integers")
    _check_unfinished_epoch(arrays["step"], arrays["unfinished_epoch"], arrays["unfinished_epoch_loss"])
    try:
        state = json.loads(arrays["rng_state"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("the random generator's state is not valid JSON") from None
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError("the random generator's state is not a PCG64 state")
    return state


def _check_unfinished_epoch(step, unfinished, loss):
    """The unfinished epoch (``unfinished_epoch``, ``unfinished_epoch_loss``) is none (all 0),
    or one stopped part-way that the next fit can go on with: fewer batches run than its rows
    make, no more skipped than run, no more run than the file's mini-batch count."""
    batch, samples, batch_size, shuffled, skipped = (int(v) for v in unfinished)
    if loss.dtype.kind != "f" or not np.isfinite(loss).all():
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


def _build(cls, config, arrays):
    """A fresh ``cls`` model of the saved configuration, its arrays' shapes checked."""
    cfg = dict(config)
    optimizer = optimizer_from_config(cfg.pop("optimizer"), cfg.pop("optimizer_config"))
    model = cls(cfg.pop("sizes"), optimizer=optimizer, **cfg)
    if arrays["params"].shape != model._params_ext.shape or arrays["slots"].shape != model._slots.shape:
        raise ValueError("array shapes do not match the saved configuration")
    return model
