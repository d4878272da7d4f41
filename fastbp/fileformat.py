"""The model file: ``save`` and ``load`` (``BaseMLP.save`` / ``BaseMLP.load`` call them).

A file is an ``.npz`` archive of plain arrays, nothing pickled:

* ``params``: the flat parameter buffer, with batch norm's running averages;
* ``slots``: the optimizer state, one row per slot;
* ``step``: ``[optimizer step, epochs, mini-batches, dropout key]`` (int64);
* ``rng_state``: the model's generator state, JSON as bytes;
* ``header``: JSON as bytes: ``format`` (``FORMAT_NAME``), ``version`` (``FORMAT_VERSION``),
  the model's ``config`` and a CRC32 ``crc32`` of each of the other arrays.

Either implementation reads the other's files.
"""

import json
import os
import tempfile
import zlib

import numpy as np

from .optimizers import optimizer_from_config

FORMAT_NAME = "fastbp-mlp"
FORMAT_VERSION = 1
# The arrays every file has (besides the header), each with its checksum.
_REQUIRED = ("params", "slots", "step", "rng_state")


def _crc32(array):
    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8))


def save(model, path):
    """Write ``model`` (config, weights, optimizer state and step) to the ``.npz`` file ``path``.

    The file is written to a temporary file in the same directory, flushed, fsynced and
    renamed over ``path``, so an interrupted save never destroys an older file.
    """
    path = os.fspath(path)
    arrays = {"params": model._params_ext, "slots": model._slots,
              "step": np.array([model._step, model._epoch, model._batches, model._dropout_key], dtype=np.int64),
              "rng_state": np.frombuffer(json.dumps(model._rng.bit_generator.state).encode(), dtype=np.uint8)}
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": model.get_config(),
              "crc32": {k: _crc32(v) for k, v in arrays.items()}}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    _write_atomically(path, arrays)


def _write_atomically(path, arrays):
    """``np.savez`` to a temporary file next to ``path``, fsynced, then renamed over it; the
    temporary file is removed if anything fails (or is interrupted) before the rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(cls, path):
    """Rebuild a model of class ``cls`` from a file written by ``save`` (by either implementation).

    Every problem with the file is a ``ValueError`` naming ``path`` (a missing file stays
    ``FileNotFoundError``); the checksums are verified before anything is built.
    """
    path = os.fspath(path)
    arrays = _read_arrays(path)
    header = _read_header(path, arrays)
    try:
        _verify_checksums(header["crc32"], arrays)
        model = _build(cls, header["config"], arrays)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not a valid fastbp model file ({exc})") from None
    model._params_ext[...] = arrays["params"]
    model._slots[...] = arrays["slots"]
    model._step, model._epoch, model._batches, model._dropout_key = (int(v) for v in arrays["step"][:4])
    model._rng.bit_generator.state = json.loads(arrays["rng_state"].tobytes().decode())
    return model


def _read_arrays(path):
    """Every array of the archive, read into memory."""
    try:
        with np.load(path, allow_pickle=False) as f:
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
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: file format version {header.get('version')!r} is not supported "
                         f"(this fastbp reads version {FORMAT_VERSION})")
    return header


def _verify_checksums(checksums, arrays):
    """Every required array is present, and every array the header lists matches its CRC32."""
    for key in _REQUIRED:
        if key not in checksums or key not in arrays:
            raise ValueError(f"array {key!r} is missing; the file is truncated or corrupt")
    for key, crc in checksums.items():
        if key not in arrays:
            raise ValueError(f"array {key!r} is missing; the file is truncated or corrupt")
        if _crc32(arrays[key]) != crc:
            raise ValueError(f"checksum mismatch in {key!r}; the file is corrupt")


def _build(cls, config, arrays):
    """A fresh ``cls`` model of the saved configuration, its arrays' shapes checked."""
    cfg = dict(config)
    optimizer = optimizer_from_config(cfg.pop("optimizer"), cfg.pop("optimizer_config"))
    model = cls(cfg.pop("sizes"), optimizer=optimizer, **cfg)
    if arrays["params"].shape != model._params_ext.shape or arrays["slots"].shape != model._slots.shape:
        raise ValueError("array shapes do not match the saved configuration")
    return model
