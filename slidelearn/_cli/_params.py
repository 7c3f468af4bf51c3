"""Command-line options made from an estimator's parameters.

An option ``--kebab-name`` of a parameter ``kebab_name`` takes everything from the
estimator, so that the command line cannot drift from it:

- its default from the signature of ``__init__``;
- its type, choices and bounds from ``_parameter_constraints`` (``StrOptions``:
  the choices, in the order of the docstring's type field; ``Interval``: a number
  checked against the interval; ``"boolean"``: ``--name`` / ``--no-name``;
  ``"array-like"`` with an ``Interval``: one or more numbers; ``"random_state"``: a
  seed; ``None``: a default of None);
- its help from the first sentence of the parameter's entry in the class docstring
  (numpydoc "Parameters" section), plus the sentence that says what None means when
  None is the default, with reST markup made plain and the names of parameters
  written as their options.
"""
import inspect
import math
import re
from argparse import ArgumentTypeError, BooleanOptionalAction
from numbers import Integral

from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["EstimatorOptions", "docstring_parameters", "interval_type", "seed", "sentences"]

# A numpydoc section header is underlined with dashes.
_RULE = re.compile(r"^-{3,}$")
# Inline reST: ``literal``, :role:`target` (or :domain:role:), *emphasis*.
_MARKUP = re.compile(r"``(?P<lit>.+?)``|:(?:\w+:)?\w+:`(?P<role>[^`]+)`"
                     r"|(?<![\w*])\*(?P<em>[^*\s][^*]*?)\*(?![\w*])")
_ASSIGN = re.compile(r"(?P<name>\w+)=(?P<q>[\"']?)(?P<value>[^\"']*)(?P=q)")


def docstring_parameters(obj):
    """The entries of the "Parameters" section of a numpydoc docstring.

    Parameters
    ----------
    obj : object
        A class or function; its docstring (as :func:`inspect.getdoc` gives it) is read.

    Returns
    -------
    entries : dict
        ``{name: (type_text, description)}``, the description's lines joined by
        blanks. Names listed together (``beta_1, beta_2 : float``) share one entry.

    Examples
    --------
    >>> def f(a, b, c):
    ...     '''Do things.
    ...
    ...     Parameters
    ...     ----------
    ...     a : int, default=1
    ...         The first. Really.
    ...     b, c : {"x", "y"}
    ...         Two more.
    ...
    ...     Returns
    ...     -------
    ...     d : int
    ...         Not a parameter.
    ...     '''
    >>> docstring_parameters(f)
    {'a': ('int, default=1', 'The first. Really.'), 'b': ('{"x", "y"}', 'Two more.'), \
'c': ('{"x", "y"}', 'Two more.')}
    """
    lines = (inspect.getdoc(obj) or "").splitlines()
    entries, names, in_params = {}, [], False
    for i, line in enumerate(lines):
        below = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if line.strip() and _RULE.match(below) and len(below) == len(line.strip()):
            in_params, names = line.strip() == "Parameters", []
            continue
        if not in_params or _RULE.match(line.strip()) or not line.strip():
            continue
        if not line[0].isspace():  # "name : type" (or a bare "name")
            head, _, type_text = line.partition(" : ")
            names = [n.strip() for n in head.split(",")]
            for name in names:
                entries[name] = (type_text.strip(), "")
        else:
            for name in names:
                type_text, text = entries[name]
                entries[name] = (type_text, f"{text} {line.strip()}".strip())
    return entries


def sentences(text):
    """Split ``text`` into sentences: at a period followed by a blank and a capital or
    a digit (or the end), outside parentheses and ``literals``, and not after "e.g." / "i.e.".

    Examples
    --------
    >>> sentences("Widths (e.g. 2. Or 3.) of layers. See ``a. B``. None: no cap.")
    ['Widths (e.g. 2. Or 3.) of layers.', 'See ``a. B``.', 'None: no cap.']
    """
    out, depth, start, literal, i = [], 0, 0, False, 0
    while i < len(text):
        if text.startswith("``", i):
            literal, i = not literal, i + 2
            continue
        c = text[i]
        if not literal:
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth = max(0, depth - 1)
            elif c == "." and depth == 0 and not text[:i + 1].endswith(("e.g.", "i.e.")):
                rest = text[i + 1:]
                after = rest.lstrip()[:1]
                if not rest or (rest[0] == " " and (after.isupper() or after.isdigit())):
                    out.append(text[start:i + 1].strip())
                    start = i + 1
        i += 1
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


def interval_type(interval):
    """An argparse ``type`` that reads a number and checks it against ``interval``.

    Parameters
    ----------
    interval : sklearn.utils._param_validation.Interval
        Integers for ``Integral`` intervals, finite floats otherwise.

    Examples
    --------
    >>> from numbers import Integral
    >>> from sklearn.utils._param_validation import Interval
    >>> codes = interval_type(Interval(Integral, 1, 32, closed="both"))
    >>> codes("6")
    6
    >>> codes("40")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an int in the range [1, 32], got 40
    """
    integer = interval.type is Integral
    what = str(interval)
    what = what[:1].lower() + what[1:]

    def convert(text):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise ArgumentTypeError(
                f"invalid {'integer' if integer else 'number'}: {text!r}") from None
        if not integer and not math.isfinite(value):
            raise ArgumentTypeError(f"must be a finite number, got {text}")
        if value not in interval:
            raise ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return convert


# Seeds that numpy.random.RandomState accepts.
seed = interval_type(Interval(Integral, 0, 2**32 - 1, closed="both"))


def _boolean(text):
    """A command-line truth value: true/false, yes/no, 1/0 (any case)."""
    value = {"true": True, "yes": True, "1": True,
             "false": False, "no": False, "0": False}.get(text.lower())
    if value is None:
        raise ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


def _default_text(value):
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    return str(value)


class EstimatorOptions:
    """Adds to a parser the options of an estimator class's parameters.

    Parameters
    ----------
    estimator_class : type
        A scikit-learn estimator with ``_parameter_constraints`` and a numpydoc
        docstring.

    Examples
    --------
    >>> import argparse
    >>> from slidelearn import SlideClassifier
    >>> parser = argparse.ArgumentParser()
    >>> options = EstimatorOptions(SlideClassifier)
    >>> action = options.add(parser, "hash_family")
    >>> action.choices, action.default
    (['auto', 'dwta', 'wta', 'simhash', 'doph', 'mips'], 'auto')
    >>> action.help  # doctest: +ELLIPSIS
    'Hash family of the output-layer tables. ... (default: auto)'
    >>> parser.parse_args(["--hash-family", "wta"]).hash_family
    'wta'
    """

    def __init__(self, estimator_class):
        self.estimator_class = estimator_class
        signature = inspect.signature(estimator_class.__init__)
        self.defaults = {name: p.default for name, p in signature.parameters.items()
                         if name != "self"}
        self.constraints = estimator_class._parameter_constraints
        self.docs = docstring_parameters(estimator_class)

    @staticmethod
    def flag(name):
        """The option of parameter ``name``: ``--kebab-case``."""
        return "--" + name.replace("_", "-")

    def plain(self, text):
        """``text`` without reST markup, parameter names written as their options."""
        def replace(m):
            if m.group("role") is not None:  # :class:`~a.b.C` -> C, :func:`a.f` -> a.f
                target = m.group("role").split("<")[0].strip()
                return target.rsplit(".", 1)[-1] if target.startswith("~") else target
            if m.group("em") is not None:
                return m.group("em")
            lit = m.group("lit")
            if lit in self.defaults:
                return self.flag(lit)
            assign = _ASSIGN.fullmatch(lit)
            if assign and assign.group("name") in self.defaults:
                return f"{self.flag(assign.group('name'))} {assign.group('value')}"
            return lit

        return _MARKUP.sub(replace, text)

    def help(self, name, default_text=None):
        """Help of the option of ``name``: the docstring's first sentence, and the
        one on None when None is the default, then ``(default: ...)``.

        ``default_text`` replaces the estimator's default in the help (and leaves out
        the sentence on None), e.g. for options that override a saved model's value.
        """
        if name not in self.docs:
            raise ValueError(f"{self.estimator_class.__name__}'s docstring has no "
                             f"entry for the parameter {name!r}")
        found = sentences(self.docs[name][1])
        chosen = found[:1]
        if default_text is None and self.defaults[name] is None:
            chosen += [s for s in found[1:] if s.startswith("None")][:1]
            default_text = "None"
        elif default_text is None:
            default_text = _default_text(self.defaults[name])
        text = self.plain(" ".join(chosen)).rstrip(".")
        # argparse %-formats help strings
        return f"{text} (default: {default_text})".replace("%", "%%")

    def _choices(self, name, options):
        """The StrOptions in the order of the docstring's ``{"a", "b"}`` type field
        (the order its description explains them in), else sorted."""
        type_text = self.docs.get(name, ("", ""))[0]
        # (once each: a type field without braces also names its default)
        listed = list(dict.fromkeys(
            re.findall(r"[\"']([^\"']+)[\"']", type_text.partition("}")[0])))
        return listed if set(listed) == set(options) else sorted(options)

    def kwargs(self, name):
        """``add_argument`` keywords for the type and choices of ``name``."""
        constraints = self.constraints[name]
        if isinstance(constraints, str):
            constraints = [constraints]
        intervals = [c for c in constraints if isinstance(c, Interval)]
        options = [c for c in constraints if isinstance(c, StrOptions)]
        if options and ("boolean" in constraints or intervals):
            # a word ("auto") or a value: the value's type, with the words let through
            words = self._choices(name, options[0].options)
            base = _boolean if "boolean" in constraints else interval_type(intervals[0])

            def convert(text):
                return text if text in words else base(text)

            convert.__name__ = base.__name__
            value = "true,false" if "boolean" in constraints else "N"
            kwargs = {"type": convert, "metavar": "{" + ",".join(words + [value]) + "}"}
            if "boolean" in constraints:  # a bare --name is true, as for a flag
                return dict(kwargs, nargs="?", const=True)
            return dict(kwargs, nargs="+") if "array-like" in constraints else kwargs
        if "boolean" in constraints:
            return {"action": BooleanOptionalAction}
        if options and None in constraints:
            # the words, and "none" for a parameter that takes None
            words = self._choices(name, options[0].options)

            def word(text):
                if text not in words + ["none"]:
                    raise ArgumentTypeError(
                        f"invalid choice: {text!r} (choose from {', '.join(words + ['none'])})")
                return None if text == "none" else text

            return {"type": word, "metavar": "{" + ",".join(words + ["none"]) + "}"}
        if options:
            return {"choices": self._choices(name, options[0].options)}
        if "array-like" in constraints and intervals:
            return {"type": interval_type(intervals[0]), "nargs": "+"}
        if intervals:
            return {"type": interval_type(intervals[0])}
        if Integral in constraints:
            return {"type": int}
        if "random_state" in constraints:
            return {"type": seed}
        raise TypeError(f"no command-line option for {name!r}: its constraints "
                        f"{constraints!r} take no value a command line can give")

    def add(self, parser, name, *, aliases=(), metavar=None, override=False):
        """Add the option of parameter ``name`` to ``parser`` (or an argument group).

        Parameters
        ----------
        parser : argparse.ArgumentParser or argument group
        name : str
            The estimator parameter; the option's ``dest``.
        aliases : sequence of str, default=()
            More option strings.
        metavar : str, default=None
            Name of the value in the help (default: argparse's, ``NAME``).
        override : bool, default=False
            The option overrides a saved model's value: its default is None, shown as
            "the model's value", instead of the estimator's default.

        Returns
        -------
        action : argparse.Action
        """
        kwargs = self.kwargs(name)
        default = None if override else self.defaults[name]
        if isinstance(default, tuple):
            default = list(default)  # what nargs="+" gives
        if metavar is not None and kwargs.get("action") is None:
            kwargs["metavar"] = metavar
        text = self.help(name, "the model's value" if override else None)
        # (given to BooleanOptionalAction, the help would get a second "(default: True)"
        # from it: the help is set on the action afterwards)
        action = parser.add_argument(self.flag(name), *aliases, dest=name, default=default,
                                     **kwargs)
        action.help = text
        return action
