"""Locate the shared data folder that examples, tests and benchmarks read."""
import os
from pathlib import Path


def find_shared_data(name, start=None):
    """The folder ``name`` of the shared data sets.

    ``$SLIDELEARN_DATA/name`` when that environment variable is set; otherwise
    ``shared/data/name`` in the first of ``start`` and its parents that has it (so a
    checkout next to a ``shared/data`` folder finds it from anywhere inside).

    Parameters
    ----------
    name : str
        The data set's folder, e.g. ``"bibtex"``.
    start : str or path-like or None, default=None
        Where the search begins; None: the current working directory.

    Returns
    -------
    path : pathlib.Path
        The folder (with ``SLIDELEARN_DATA`` set, it is not checked to exist).

    Raises
    ------
    FileNotFoundError
        If no ``shared/data/name`` is found and ``SLIDELEARN_DATA`` is not set.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from slidelearn.datasets import find_shared_data
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     (Path(tmp) / "shared" / "data" / "bibtex").mkdir(parents=True)
    ...     inner = Path(tmp) / "repo" / "examples"
    ...     inner.mkdir(parents=True)
    ...     found = find_shared_data("bibtex", start=inner)
    ...     print(found.relative_to(tmp).as_posix() if "SLIDELEARN_DATA" not in os.environ
    ...           else "shared/data/bibtex")
    shared/data/bibtex
    """
    if os.environ.get("SLIDELEARN_DATA"):
        return Path(os.environ["SLIDELEARN_DATA"]) / name
    here = Path.cwd() if start is None else Path(start)
    here = here.resolve()
    for folder in (here, *here.parents):
        if (folder / "shared" / "data" / name).is_dir():
            return folder / "shared" / "data" / name
    raise FileNotFoundError(f"no shared/data/{name} in {here} or above it: set "
                            "SLIDELEARN_DATA to the folder that holds it")
