"""Loader for the MovieLens 100K ratings with user and item side information.

The folder of the GroupLens MovieLens 100K release holds ``u.data`` (one
rating a line: ``user item rating timestamp``, tab-separated), ``u.user``
(``user|age|gender|occupation|zip``) and ``u.item`` (Latin-1,
``item|title|release date|video release date|url|`` then 19 genre flags).
"""
import errno
import os
import re

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_movielens"]

GENRES = (
    "unknown", "action", "adventure", "animation", "childrens", "comedy", "crime",
    "documentary", "drama", "fantasy", "film_noir", "horror", "musical", "mystery",
    "romance", "sci_fi", "thriller", "war", "western",
)
_N_GENRES = len(GENRES)
_RATING_LINE = re.compile(
    r"\s*(\d+)\s+(\d+)\s+(\d+(?:\.\d*)?|\.\d+)\s+(\d+)\s*", re.ASCII
)
_UINT = re.compile(r"\d+", re.ASCII)
_YEAR = re.compile(r"(?:.*-)?(\d{4})", re.ASCII)
# Upper bound on user and item numbers, so that lookup tables stay small.
_MAX_ID = 10**8
# Id of a zip code that does not start with a digit (0-9 are the first digits).
ZIP_OTHER = 10


def _require(path, name):
    file = os.path.join(path, name)
    if not os.path.isfile(file):
        raise FileNotFoundError(
            errno.ENOENT, f"MovieLens file {name!r} not found", file
        )
    return file


def _lines(file):
    """Yield ``(lineno, line)`` for the non-blank lines of ``file`` (Latin-1)."""
    with open(file, encoding="latin-1", newline=None) as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield lineno, line


def _id(text, file, lineno, what):
    if not _UINT.fullmatch(text) or not 1 <= int(text) <= _MAX_ID:
        raise ValueError(
            f"{file}, line {lineno}: {what} must be an integer in [1, {_MAX_ID}], "
            f"got {text!r}"
        )
    return int(text)


def _new_id(text, seen, file, lineno, what):
    """The user or item number ``text`` of a side file, which must not repeat.

    ``seen`` maps the numbers read so far to their line and gets this one.
    """
    number = _id(text, file, lineno, f"the {what}")
    if number in seen:
        raise ValueError(
            f"{file}, line {lineno}: {what} {number} is repeated (first on line {seen[number]})"
        )
    seen[number] = lineno
    return number


def _known_table(numbers, n_columns):
    """Lookup structures of a side file listing ``numbers``.

    Returns the numbers as an int64 array, a boolean mask of the numbers that
    occur and a zero table with a row for each number up to the largest.
    """
    size = max(numbers, default=0) + 1
    known = np.zeros(size, dtype=bool)
    numbers = np.array(numbers, dtype=np.int64)
    known[numbers] = True
    return numbers, known, np.zeros((size, n_columns), dtype=np.float64)


def _read_ratings(file):
    users, items, ratings, stamps, linenos = [], [], [], [], []
    match = _RATING_LINE.fullmatch
    for lineno, line in _lines(file):
        m = match(line)
        if m is None:
            raise ValueError(
                f"{file}, line {lineno}: expected 'user item rating timestamp' "
                f"(non-negative numbers separated by tabs), got {line[:80]!r}"
            )
        user, item, rating, stamp = m.groups()
        users.append(_id(user, file, lineno, "the user"))
        items.append(_id(item, file, lineno, "the item"))
        ratings.append(float(rating))
        stamps.append(int(stamp))
        linenos.append(lineno)
    return (
        np.array(users, dtype=np.int64),
        np.array(items, dtype=np.int64),
        np.array(ratings, dtype=np.float32),
        np.array(stamps, dtype=np.int64),
        linenos,
    )


def _check_known(numbers, known, linenos, data_file, side_file, what):
    """Raise if a rating refers to a user or item absent from the side file."""
    unknown = numbers >= len(known)
    unknown[~unknown] = ~known[numbers[~unknown]]
    if unknown.any():
        i = int(np.argmax(unknown))
        raise ValueError(
            f"{data_file}, line {linenos[i]}: {what} {int(numbers[i])} is not in {side_file}"
        )


def _encode_sorted(values):
    """Codes of ``values`` in the sorted order of their distinct values."""
    categories, codes = np.unique(np.array(values, dtype=object).astype(str), return_inverse=True)
    return codes.astype(np.int64), categories


def _read_users(file):
    numbers, ages, genders, occupations, zips, seen = [], [], [], [], [], {}
    for lineno, line in _lines(file):
        fields = line.split("|")
        if len(fields) != 5:
            raise ValueError(
                f"{file}, line {lineno}: expected 5 '|'-separated fields "
                f"'user|age|gender|occupation|zip', got {len(fields)}"
            )
        user = _new_id(fields[0].strip(), seen, file, lineno, "user")
        age = fields[1].strip()
        if not _UINT.fullmatch(age):
            raise ValueError(
                f"{file}, line {lineno}: the age must be a non-negative integer, got {age!r}"
            )
        gender, occupation = fields[2].strip(), fields[3].strip()
        for what, value in (("gender", gender), ("occupation", occupation)):
            if not value:
                raise ValueError(f"{file}, line {lineno}: the {what} is empty")
        numbers.append(user)
        ages.append(float(age))
        genders.append(gender)
        occupations.append(occupation)
        zip_code = fields[4].strip()
        zips.append(int(zip_code[0]) if zip_code[:1].isdigit() and zip_code[0].isascii()
                    else ZIP_OTHER)
    numbers, known, table = _known_table(numbers, 4)
    gender_codes, _ = _encode_sorted(genders)
    occupation_codes, _ = _encode_sorted(occupations)
    table[numbers, 0] = gender_codes
    table[numbers, 1] = occupation_codes
    table[numbers, 2] = zips
    table[numbers, 3] = ages
    sizes = [
        len(set(genders)), len(set(occupations)), ZIP_OTHER + 1,
    ]
    return known, table, sizes


def _read_items(file):
    numbers, years, flags, seen = [], [], [], {}
    for lineno, line in _lines(file):
        fields = line.split("|")
        if len(fields) < 5 + _N_GENRES:
            raise ValueError(
                f"{file}, line {lineno}: expected {5 + _N_GENRES} '|'-separated fields "
                "'item|title|release date|video release date|url|' and 19 genre flags, "
                f"got {len(fields)}"
            )
        item = _new_id(fields[0].strip(), seen, file, lineno, "item")
        # A title containing '|' shifts the fields: count them from the end.
        date = fields[-_N_GENRES - 3].strip()
        if date:
            m = _YEAR.fullmatch(date)
            if m is None:
                raise ValueError(
                    f"{file}, line {lineno}: the release date must end with a "
                    f"4-digit year (like '01-Jan-1995'), got {date!r}"
                )
            years.append(float(m.group(1)))
        else:
            years.append(np.nan)
        genre = [g.strip() for g in fields[-_N_GENRES:]]
        for name, g in zip(GENRES, genre):
            if g not in ("0", "1"):
                raise ValueError(
                    f"{file}, line {lineno}: the genre flag {name!r} must be 0 or 1, "
                    f"got {g!r}"
                )
        numbers.append(item)
        flags.append([g == "1" for g in genre])
    numbers, known, table = _known_table(numbers, 2 + _N_GENRES)
    years = np.array(years, dtype=np.float64)
    finite = ~np.isnan(years)
    # Missing release years get the median of the known ones.
    years[~finite] = np.median(years[finite]) if finite.any() else 0.0
    decades = np.floor(years / 10.0) * 10.0
    decade_codes = np.unique(decades, return_inverse=True)[1]
    table[numbers, 0] = decade_codes
    table[numbers, 1] = years
    table[numbers, 2:] = np.array(flags, dtype=np.float64).reshape(-1, _N_GENRES)
    return known, table, [len(np.unique(decades))]


def load_movielens(path, *, side_features=True, as_frame=False):
    """Load the MovieLens 100K ratings as a DLRM-ready design matrix.

    One row per rating of ``u.data``. The features are categorical ids
    (integers from 0, to be looked up in embedding tables) and numeric
    values:

    ========================  ===========  ====================================
    column                    kind         value
    ========================  ===========  ====================================
    ``user_id``               categorical  user number - 1
    ``item_id``               categorical  item number - 1
    ``gender``                categorical  code in sorted order (F=0, M=1)
    ``occupation``            categorical  code in sorted order of the
                                           occupations of u.user
    ``zip_prefix``            categorical  first digit of the zip code (0-9);
                                           10 when it does not start with a
                                           digit (e.g. Canadian postal codes)
    ``release_decade``        categorical  code of ``10 * (year // 10)`` in
                                           sorted order of u.item's decades
                                           (year as below, imputed if missing)
    ``age``                   numeric      age in years, as is
    ``release_year``          numeric      year of the release date; missing
                                           years get the median of the known
                                           years of u.item
    ``genre_<name>`` (19)     numeric      0/1 genre flags in u.item's order
    ========================  ===========  ====================================

    With ``side_features=False`` only ``user_id`` and ``item_id`` are
    returned and ``u.user`` / ``u.item`` are not read. The categorical
    columns come first, so their column indices are
    ``range(len(categorical_features))``. The string codes (gender,
    occupation) are computed over all the users of ``u.user``, not only the
    ones that rated.

    Parameters
    ----------
    path : str or os.PathLike
        The MovieLens 100K folder (holding ``u.data`` and, for the side
        features, ``u.user`` and ``u.item``).
    side_features : bool, default=True
        Whether to add the user and item side features.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame (categorical columns int64,
        numeric ones float64), ``target`` a pandas Series named ``"rating"``
        and ``frame`` a DataFrame with the features, ``rating`` and
        ``timestamp``. Requires pandas.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        Dictionary-like object with the attributes:

        data : ndarray of shape (n_ratings, n_features), dtype float64, or DataFrame
            The features (see the table above).
        target : ndarray of shape (n_ratings,), dtype float32, or Series
            The ratings (1 to 5).
        feature_names : list of str
            The column names of ``data``.
        categorical_features : list of str
            The names of the categorical id columns.
        table_sizes : list of int
            Number of ids of each categorical column (the embedding table
            sizes), in the order of ``categorical_features``: the largest
            user / item number (of ``u.user`` / ``u.item`` with side
            features, else of ``u.data``) for ``user_id`` / ``item_id``.
        timestamp : ndarray of shape (n_ratings,), dtype int64
            Unix time of each rating.
        frame : DataFrame or None
            The whole table if ``as_frame=True``, else None.

    Raises
    ------
    FileNotFoundError
        If the folder or ``u.data`` is absent, or, with
        ``side_features=True``, ``u.user`` or ``u.item``.
    ValueError
        If a file is malformed, or a rating refers to a user or item absent
        from ``u.user`` / ``u.item``. The message names the file and the
        1-based line number.
    ImportError
        If ``as_frame=True`` and pandas is not installed.

    Examples
    --------
    >>> import os, tempfile
    >>> from slidelearn.datasets import load_movielens
    >>> flags = "|".join(["0"] * 19)
    >>> files = {
    ...     "u.data": "1\\t2\\t5\\t881250949\\n2\\t1\\t3\\t891717742\\n",
    ...     "u.user": "1|24|M|technician|85711\\n2|53|F|other|T8H1N\\n",
    ...     "u.item": f"1|Toy Story (1995)|01-Jan-1995||url|{flags}\\n"
    ...               f"2|unknown||||{flags}\\n",
    ... }
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for name, text in files.items():
    ...         with open(os.path.join(tmp, name), "w") as f:
    ...             _ = f.write(text)
    ...     ml = load_movielens(tmp)
    >>> ml.feature_names[:8]
    ['user_id', 'item_id', 'gender', 'occupation', 'zip_prefix', 'release_decade', 'age', 'release_year']
    >>> ml.data[:, :6]  # categorical ids
    array([[ 0.,  1.,  1.,  1.,  8.,  0.],
           [ 1.,  0.,  0.,  0., 10.,  0.]])
    >>> ml.data[:, 6:8]  # age, release year (item 2's missing year -> median)
    array([[  24., 1995.],
           [  53., 1995.]])
    >>> ml.target
    array([5., 3.], dtype=float32)
    >>> ml.categorical_features, ml.table_sizes
    (['user_id', 'item_id', 'gender', 'occupation', 'zip_prefix', 'release_decade'], [2, 2, 2, 2, 11, 1])
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            errno.ENOENT, "MovieLens folder not found", os.fsdecode(path)
        )
    data_file = _require(path, "u.data")
    user_file = item_file = None
    if side_features:
        user_file = _require(path, "u.user")
        item_file = _require(path, "u.item")
    if as_frame:
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "load_movielens(as_frame=True) requires pandas; install it "
                "(pip install pandas) or pass as_frame=False"
            ) from exc

    users, items, ratings, stamps, linenos = _read_ratings(data_file)
    names = ["user_id", "item_id"]
    columns = [users - 1, items - 1]
    table_sizes = [int(users.max(initial=0)), int(items.max(initial=0))]
    numeric_names, numeric_columns = [], []
    if side_features:
        user_known, user_table, user_sizes = _read_users(user_file)
        item_known, item_table, item_sizes = _read_items(item_file)
        _check_known(users, user_known, linenos, data_file, user_file, "user")
        _check_known(items, item_known, linenos, data_file, item_file, "item")
        # Ids run up to the largest number of the side files.
        table_sizes = [len(user_known) - 1, len(item_known) - 1]
        u, i = user_table[users], item_table[items]
        names += ["gender", "occupation", "zip_prefix", "release_decade"]
        columns += [u[:, 0], u[:, 1], u[:, 2], i[:, 0]]
        table_sizes += user_sizes + item_sizes
        numeric_names = ["age", "release_year"] + [f"genre_{g}" for g in GENRES]
        numeric_columns = [u[:, 3], i[:, 1]] + [i[:, 2 + g] for g in range(_N_GENRES)]

    categorical = list(names)
    feature_names = names + numeric_names
    data = np.empty((len(ratings), len(feature_names)), dtype=np.float64)
    for j, column in enumerate(columns + numeric_columns):
        data[:, j] = column
    target, frame = ratings, None
    if as_frame:
        frame = pd.DataFrame(data, columns=feature_names)
        frame = frame.astype({name: np.int64 for name in categorical})
        data = frame
        target = pd.Series(ratings, name="rating")
        frame = data.assign(rating=target, timestamp=stamps)
    return Bunch(
        data=data,
        target=target,
        feature_names=feature_names,
        categorical_features=categorical,
        table_sizes=table_sizes,
        timestamp=stamps,
        frame=frame,
    )
