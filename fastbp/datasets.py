"""Small datasets shipped inside the package: no download, no scikit-learn.

:func:`load_digits` — the 8x8 handwritten digits, exactly as scikit-learn's
``sklearn.datasets.load_digits`` returns them.

Source and licence: UCI Machine Learning Repository, "Optical Recognition of Handwritten
Digits", E. Alpaydin and C. Kaynak, 1998 (https://doi.org/10.24432/C50P49), licensed under
Creative Commons Attribution 4.0 International (CC BY 4.0,
https://creativecommons.org/licenses/by/4.0/).  The 1,797 images are the UCI set's test part
(``optdigits.tes``), the copy scikit-learn distributes; the values are unchanged, stored as
uint8 in ``fastbp/data/digits.npz`` (written by ``tools/make_digits.py``; see
``fastbp/data/README.md``).
"""

from importlib import resources

import numpy as np

__all__ = ["load_digits"]

_DIGITS_FILE = "digits.npz"
_DIGITS_SHAPES = {"X": (1797, 64), "y": (1797,)}


def load_digits():
    """The 8x8 handwritten digits: ``(X, y)``.

    ``X``: float64, shape (1797, 64): each row one image, its 8x8 pixels row by row, each the
    count of set pixels in a 4x4 block of the original 32x32 bitmap, 0..16.
    ``y``: int64, shape (1797,): the digit shown, 0..9 (about 180 of each).

    The same values and dtypes as ``sklearn.datasets.load_digits(return_X_y=True)``; fresh
    arrays on every call (the caller may change them).  Raises ``OSError`` if the packaged file
    is missing or damaged.
    """
    raw = _read_packaged(_DIGITS_FILE)
    for name, shape in _DIGITS_SHAPES.items():
        array = raw.get(name)
        if array is None or array.shape != shape or array.dtype != np.uint8:
            raise OSError(f"fastbp's packaged {_DIGITS_FILE} is damaged (array {name!r}); reinstall fastbp")
    if raw["X"].max() > 16 or raw["y"].max() > 9:
        raise OSError(f"fastbp's packaged {_DIGITS_FILE} is damaged (values out of range); reinstall fastbp")
    return raw["X"].astype(np.float64), raw["y"].astype(np.int64)


def _read_packaged(name):
    """Every array of the packaged ``fastbp/data/<name>`` archive, read into memory."""
    try:
        with resources.files(__package__).joinpath("data").joinpath(name).open("rb") as f:
            with np.load(f, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
    except OSError as exc:
        raise OSError(f"cannot read fastbp's packaged {name} ({exc}); reinstall fastbp") from None
    except Exception as exc:  # a damaged archive: zipfile / numpy format errors
        raise OSError(f"fastbp's packaged {name} is damaged ({type(exc).__name__}: {exc}); "
                      "reinstall fastbp") from None
