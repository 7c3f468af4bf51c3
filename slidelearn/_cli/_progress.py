"""The text progress bar of the command line, and what feeds it during training.

:class:`Progress` draws one line on standard error; :class:`EpochProgress` is the
``callback`` the ``train`` command gives the estimator, advancing the bar after every
epoch from the :class:`~slidelearn.utils.EpochInfo` it receives; :class:`LinesAbove`
is the stream the estimator's ``verbose`` lines are printed to while the bar is shown,
so that each lands on a line of its own above the bar.
"""
import io
import math
import sys
import time

__all__ = ["EpochProgress", "LinesAbove", "Progress"]


def _clock(seconds):
    """``mm:ss`` or ``h:mm:ss``; ``--:--`` when unknown."""
    if not math.isfinite(seconds):
        return "--:--"
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """A small text progress bar on a stream (by default standard error).

    Redraws in place with a carriage return, at most every ``min_interval``
    seconds except for the last step; ``close`` ends the line. Does nothing when
    ``enabled`` is false.

    Parameters
    ----------
    total : int
        Steps of the whole job.
    desc : str
        Name written before the bar.
    enabled : bool
        Draw the bar (False: every method is a no-op).
    unit : str, default=""
        Name of a step, written after the counts.
    stream : file-like, default=None
        Where the bar is drawn (None: ``sys.stderr`` at the time of each draw, so
        that a redirection made after the bar was created is honoured).
    width : int, default=24
        Characters of the bar itself.
    min_interval : float, default=0.1
        Seconds between two redraws (the last step is always drawn).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = Progress(2, "work", enabled=True, unit="steps", stream=out, min_interval=0)
    >>> bar.update(1, note="half")
    >>> bar.update(1, note="done")
    >>> bar.close()
    >>> out.getvalue().split("\\r")[-1]  # doctest: +ELLIPSIS
    'work: 100% |########################| 2/2 steps [00:00<00:00] done\\n'
    """

    def __init__(self, total, desc, *, enabled, unit="", stream=None, width=24,
                 min_interval=0.1):
        self.total = max(int(total), 0)
        self.desc = desc
        self.enabled = bool(enabled)
        self.unit = unit
        self.stream = stream
        self.width = width
        self.min_interval = min_interval
        self.n = 0
        self.note = ""
        self._t0 = time.perf_counter()
        self._last_draw = -math.inf
        self._last_len = 0
        self._drawn = None
        self._closed = False
        self._draw(force=True)

    def _out(self):
        return sys.stderr if self.stream is None else self.stream

    def _line(self, now):
        elapsed = now - self._t0
        frac = self.n / self.total if self.total else 1.0
        filled = min(self.width, int(self.width * frac))
        bar = "#" * filled + "-" * (self.width - filled)
        if 0 < self.n < self.total and elapsed > 0:
            eta = _clock((self.total - self.n) * elapsed / self.n)
        else:
            eta = "00:00" if self.n >= self.total else "--:--"
        unit = f" {self.unit}" if self.unit else ""
        line = (f"{self.desc}: {frac:4.0%} |{bar}| {self.n:,}/{self.total:,}{unit} "
                f"[{_clock(elapsed)}<{eta}]")
        return f"{line} {self.note}" if self.note else line

    def _draw(self, force=False):
        if not self.enabled or self._closed:
            return
        now = time.perf_counter()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self._drawn = (self.n, self.note)
        line = self._line(now)
        pad = " " * max(0, self._last_len - len(line))  # wipe a longer previous line
        self._last_len = len(line)
        stream = self._out()
        stream.write("\r" + line + pad)
        stream.flush()

    def update(self, n=1, note=None):
        """Advance by ``n`` steps; ``note`` replaces the text after the bar."""
        self.n = min(self.total, self.n + n)
        if note is not None:
            self.note = note
        self._draw(force=self.n >= self.total)

    def write(self, line):
        """Write ``line`` (without its newline) on a line of its own above the bar."""
        stream = self._out()
        if not self.enabled or self._closed:
            stream.write(line + "\n")
            stream.flush()
            return
        # Wipe the bar, write the line, then draw the bar again below it.
        stream.write("\r" + " " * self._last_len + "\r" + line + "\n")
        self._last_len = 0
        self._draw(force=True)

    def close(self, note=None):
        """Draw the final state and end the line."""
        if self._closed:
            return
        if note is not None:
            self.note = note
        if self._drawn != (self.n, self.note):
            self._draw(force=True)
        self._closed = True
        if self.enabled:
            stream = self._out()
            stream.write("\n")
            stream.flush()


class EpochProgress:
    """Estimator ``callback`` that advances a :class:`Progress` bar after each epoch.

    The bar's note shows the epoch's training loss, and the validation score when
    the estimator holds out rows (``early_stopping``). Returns None: it never asks
    the estimator to stop.

    Parameters
    ----------
    progress : Progress
        The bar, of ``max_iter`` steps.

    Examples
    --------
    >>> import io
    >>> from sklearn.datasets import load_iris
    >>> from slidelearn import SlideClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> out = io.StringIO()
    >>> bar = Progress(3, "train", enabled=True, unit="epochs", stream=out)
    >>> clf = SlideClassifier(max_iter=3, n_jobs=1, random_state=0,
    ...                       callback=EpochProgress(bar)).fit(X, y)
    >>> bar.close()
    >>> out.getvalue().split("\\r")[-1]  # doctest: +ELLIPSIS
    'train: 100% |...| 3/3 epochs [...] loss ...\\n'
    """

    def __init__(self, progress):
        self.progress = progress

    def __call__(self, estimator, info):
        note = f"loss {info.loss:.5f}"
        if info.validation_score is not None:
            note += f", validation {info.validation_score:.4f}"
        self.progress.update(info.epoch - self.progress.n, note=note)


class LinesAbove(io.TextIOBase):
    """Text stream whose complete lines go above a :class:`Progress` bar.

    ``contextlib.redirect_stdout(LinesAbove(bar))`` around ``fit`` puts an
    estimator's ``verbose`` lines on the bar's stream without breaking the bar's
    line; text is passed on as it is, a line at a time.

    Examples
    --------
    >>> import contextlib, io
    >>> out = io.StringIO()
    >>> bar = Progress(1, "job", enabled=False, stream=out)
    >>> with contextlib.redirect_stdout(LinesAbove(bar)):
    ...     print("hello")
    >>> out.getvalue()
    'hello\\n'
    """

    def __init__(self, progress):
        super().__init__()
        self.progress = progress
        self._buf = ""

    def writable(self):
        return True

    def write(self, text):
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self.progress.write(line)
        return len(text)
