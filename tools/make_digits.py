"""Write ``fastbp/data/digits.npz``, the dataset behind ``fastbp.datasets.load_digits``, from
scikit-learn's copy of the UCI "Optical Recognition of Handwritten Digits" data.

    python tools/make_digits.py [--out fastbp/data/digits.npz] [--check]

A development script (it needs scikit-learn; fastbp itself never imports it).  The file holds
two arrays, compressed: ``X`` (1797, 64) uint8, the pixel counts 0..16 row by row, and ``y``
(1797,) uint8, the digits 0..9; both are exactly scikit-learn's ``load_digits`` values (the
script checks that before writing, and writes atomically).  The archive is written with a fixed
member timestamp, so running the script again gives a byte-identical file.  ``--check``
writes nothing: it verifies that the existing file holds scikit-learn's arrays.
"""

import argparse
import io
import os
import sys
import tempfile
import zipfile

import numpy as np

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "fastbp", "data", "digits.npz")


def sklearn_digits():
    """scikit-learn's digits as the stored dtypes, after checking that nothing is lost."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("tools/make_digits.py needs scikit-learn: pip install scikit-learn") from None
    X, y = load_digits(return_X_y=True)
    if X.shape != (1797, 64) or y.shape != (1797,):
        raise SystemExit(f"unexpected shapes from scikit-learn: X {X.shape}, y {y.shape}")
    X8, y8 = X.astype(np.uint8), y.astype(np.uint8)
    if not (np.array_equal(X8, X) and np.array_equal(y8, y)) or X8.max() > 16 or y8.max() > 9:
        raise SystemExit("scikit-learn's digits are not integers 0..16 / 0..9: not storable as uint8")
    return X8, y8


def npz_bytes(arrays):
    """A compressed ``.npz`` archive of ``arrays`` (name -> array) as bytes, every member dated
    1980-01-01 so that the same arrays always give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def write_atomically(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="where to write (default: fastbp/data/digits.npz)")
    parser.add_argument("--check", action="store_true", help="verify the existing file instead of writing")
    args = parser.parse_args()
    out = os.path.normpath(args.out)
    X, y = sklearn_digits()
    if args.check:
        with np.load(out, allow_pickle=False) as f:
            same = sorted(f.files) == ["X", "y"] and all(
                f[k].dtype == np.uint8 and np.array_equal(f[k], v) for k, v in (("X", X), ("y", y)))
        print(f"{out}: {'matches' if same else 'DIFFERS FROM'} scikit-learn's digits")
        return 0 if same else 1
    data = npz_bytes({"X": X, "y": y})
    write_atomically(out, data)
    print(f"wrote {out}: X {X.shape} uint8, y {y.shape} uint8, {len(data):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
