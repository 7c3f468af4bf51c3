"""Errors of the command line, and the reading and writing of its data files."""
import os

__all__ = ["CLIError", "check_writable", "load_xc"]


class CLIError(Exception):
    """A problem to report as one line ``slidelearn: error: ...`` (exit status 1)."""


def load_xc(path, what):
    """:func:`~slidelearn.datasets.load_xc_repository`, with file and format problems
    turned into :class:`CLIError` naming the file (as ``what``, e.g. ``TRAIN_FILE``).

    Examples
    --------
    >>> try:
    ...     load_xc("no-such-file.txt", "TEST_FILE")
    ... except CLIError as exc:
    ...     print(exc)
    TEST_FILE 'no-such-file.txt': no such file
    """
    from slidelearn.datasets import load_xc_repository

    try:
        return load_xc_repository(path)
    except FileNotFoundError:
        raise CLIError(f"{what} {path!r}: no such file") from None
    except IsADirectoryError:
        raise CLIError(f"{what} {path!r} is a directory, not a file") from None
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        msg = str(exc)
        sep = ", " if msg.startswith("line ") else ": "
        raise CLIError(f"{path}{sep}{msg}") from None


def check_writable(path, what):
    """Raise :class:`CLIError` if ``path`` cannot be created: checked before long work,
    so that a typo in an output path does not cost a training run."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CLIError(f"{what} {path!r} is a directory")
    if not os.path.isdir(folder):
        raise CLIError(f"cannot write {what} {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"cannot write {what} {path!r}: folder {folder!r} is not writable")
