"""Compiled kernels for the Extreme Classification Repository text format.

Private module. The public entry points are
:func:`slidelearn.datasets.load_xc_repository` and
:func:`slidelearn.datasets.dump_xc_repository`, which take care of opening
files, parsing the header and building the sparse matrices; this module only
holds the byte-level loops.

Parsing works on the raw bytes of the file with index loops, one pass to count
the ``:`` and ``,`` separators (which bound the number of stored entries) and
one pass that parses and fills preallocated CSR arrays. Numbers are parsed by
hand: indices as unsigned decimal integers, values with a small decimal
parser that is exact (correctly rounded to double) for up to 19 significant
digits and powers of ten up to 1e22, which covers every value written by
:func:`dump_xc_repository` and by the usual tools, and is independent of the C
locale.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.math cimport floor, isfinite, log10, nearbyint, pow
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcpy, memset

import re

ctypedef fused xidx_t:
    int32_t
    int64_t

ctypedef fused yidx_t:
    int32_t
    int64_t

ctypedef fused index_t:
    int32_t
    int64_t


cdef enum:
    PARSE_OK = 0
    ERR_LABEL_TOKEN = 1
    ERR_LABEL_RANGE = 2
    ERR_DUP_LABEL = 3
    ERR_FEATURE_TOKEN = 4
    ERR_FEATURE_RANGE = 5
    ERR_VALUE_TOKEN = 6
    ERR_VALUE_RANGE = 7
    ERR_DUP_FEATURE = 8
    ERR_TOO_FEW_LINES = 9
    ERR_TOO_MANY_LINES = 10
    ERR_CAPACITY = 11


cdef struct ParseState:
    int code
    Py_ssize_t line      # 1-based line number of the error
    Py_ssize_t pos       # byte offset of the offending token
    int64_t value        # offending index (duplicates)
    Py_ssize_t rows      # number of data rows parsed
    Py_ssize_t x_nnz
    Py_ssize_t y_nnz


# Exact powers of ten representable in a double (10**22 < 2**53 * 2**22).
cdef double POW10[23]
POW10[0] = 1.0
for _i in range(1, 23):
    POW10[_i] = POW10[_i - 1] * 10.0

cdef uint64_t POW10_U[20]
POW10_U[0] = 1
for _i in range(1, 20):
    POW10_U[_i] = POW10_U[_i - 1] * 10

# Integers at least this large are out of range for any header value, so the
# integer parser saturates here instead of overflowing.
cdef uint64_t INDEX_SATURATION = 1000000000000000000ULL   # 1e18


# ---------------------------------------------------------------------------
# Scalar helpers
# ---------------------------------------------------------------------------

cdef inline bint _is_space(unsigned char c) noexcept nogil:
    """Blank characters inside a line (``\\n`` ends the line)."""
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


cdef inline bint _is_digit(unsigned char c) noexcept nogil:
    return c >= 48 and c <= 57


cdef inline Py_ssize_t _parse_index(const unsigned char* buf, Py_ssize_t q,
                                    Py_ssize_t end, int64_t* out) noexcept nogil:
    """Parse the decimal digits at ``buf[q:end]``.

    Returns the position after the digits (``q`` itself when there are none)
    and stores the value in ``out``, saturated at ``INDEX_SATURATION``.
    """
    cdef uint64_t v = 0
    while q < end and _is_digit(buf[q]):
        if v < INDEX_SATURATION // 10:
            v = v * 10 + (buf[q] - 48)
        else:
            v = INDEX_SATURATION
        q += 1
    out[0] = <int64_t>v
    return q


cdef inline Py_ssize_t _parse_mantissa_digits(const unsigned char* buf, Py_ssize_t q,
                                              Py_ssize_t end, uint64_t* mant, int* ndig,
                                              bint* truncated, Py_ssize_t* kept) noexcept nogil:
    """Append the digits at ``buf[q:end]`` to the mantissa ``mant``.

    Digits go into ``mant`` while it holds fewer than 19 significant ones (the
    number of those is added to ``kept``); later ones are dropped, and a
    dropped nonzero digit sets ``truncated``. Returns the position after the
    digits. The integer and the fraction part differ only in how ``kept`` and
    the dropped digits move the decimal exponent.
    """
    cdef unsigned int d
    while q < end and _is_digit(buf[q]):
        d = buf[q] - 48
        if ndig[0] < 19:
            mant[0] = mant[0] * 10 + d
            kept[0] += 1
            if mant[0] != 0:
                ndig[0] += 1
        elif d != 0:
            truncated[0] = True
        q += 1
    return q


cdef inline Py_ssize_t _parse_float(const unsigned char* buf, Py_ssize_t q,
                                    Py_ssize_t end, double* out) noexcept nogil:
    """Parse a decimal floating point number at ``buf[q:end]``.

    Accepts ``[+-]digits[.digits][(e|E)[+-]digits]`` with at least one digit
    in the mantissa. Returns the position after the number, or -1 when no
    number starts at ``q``. Infinities and NaNs are not accepted.
    """
    cdef bint neg = False
    cdef bint any_digit
    cdef bint truncated = False
    cdef uint64_t mant = 0
    cdef int ndig = 0
    cdef int64_t exp10 = 0
    cdef int64_t ev = 0
    cdef int64_t esign = 1
    cdef Py_ssize_t q0, kept = 0
    cdef double v

    if q < end and (buf[q] == 45 or buf[q] == 43):      # '-' or '+'
        neg = buf[q] == 45
        q += 1
    # Integer part: each digit dropped from the mantissa is a factor of ten.
    q0 = q
    q = _parse_mantissa_digits(buf, q, end, &mant, &ndig, &truncated, &kept)
    exp10 = (q - q0) - kept
    any_digit = q > q0
    if q < end and buf[q] == 46:                        # '.'
        q += 1
        # Fraction part: each digit kept in the mantissa divides it by ten.
        q0 = q
        kept = 0
        q = _parse_mantissa_digits(buf, q, end, &mant, &ndig, &truncated, &kept)
        exp10 -= kept
        any_digit = any_digit or q > q0
    if not any_digit:
        return -1
    if q < end and (buf[q] == 101 or buf[q] == 69):     # 'e' or 'E'
        q += 1
        if q < end and (buf[q] == 45 or buf[q] == 43):
            if buf[q] == 45:
                esign = -1
            q += 1
        if q >= end or not _is_digit(buf[q]):
            return -1
        while q < end and _is_digit(buf[q]):
            if ev < 100000:
                ev = ev * 10 + (buf[q] - 48)
            q += 1
        exp10 += esign * ev

    if mant == 0:
        v = 0.0
    elif not truncated and mant <= 9007199254740992ULL and -22 <= exp10 <= 22:
        # Both operands exact: a single, correctly rounded operation.
        v = <double>mant
        if exp10 >= 0:
            v = v * POW10[exp10]
        else:
            v = v / POW10[-exp10]
    elif ndig + exp10 > 60:
        v = pow(10.0, 400.0)        # +inf: rejected by the float32 range check
    elif ndig + exp10 < -60:
        v = 0.0                     # far below the float32 subnormal range
    else:
        v = <double>mant * pow(10.0, <double>exp10)
    out[0] = -v if neg else v
    return q


cdef inline void _swap_pairs(index_t* idx, float* val, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Swap entries ``a`` and ``b`` of ``idx`` and of ``val``."""
    cdef index_t ti = idx[a]
    cdef float tv = val[a]
    idx[a] = idx[b]
    idx[b] = ti
    val[a] = val[b]
    val[b] = tv


cdef inline void _sort_pairs(index_t* idx, float* val, Py_ssize_t n) noexcept nogil:
    """Sort ``idx[:n]`` ascending, carrying ``val`` along (insertion/heap sort)."""
    cdef Py_ssize_t i, j, start, end, root, child
    cdef index_t ti
    cdef float tv
    if n <= 24:
        for i in range(1, n):
            ti = idx[i]
            tv = val[i]
            j = i - 1
            while j >= 0 and idx[j] > ti:
                idx[j + 1] = idx[j]
                val[j + 1] = val[j]
                j -= 1
            idx[j + 1] = ti
            val[j + 1] = tv
        return
    # Heap sort: O(n log n) worst case, in place, no recursion.
    start = (n - 2) // 2
    end = n
    while True:
        # sift down from `start` within [0, end)
        root = start
        while True:
            child = 2 * root + 1
            if child >= end:
                break
            if child + 1 < end and idx[child] < idx[child + 1]:
                child += 1
            if idx[root] < idx[child]:
                _swap_pairs(idx, val, root, child)
                root = child
            else:
                break
        if start > 0:
            start -= 1
        else:
            end -= 1
            if end <= 0:
                break
            _swap_pairs(idx, val, 0, end)


cdef inline int64_t _first_duplicate(const index_t* idx, Py_ssize_t n) noexcept nogil:
    """First value repeated in the sorted ``idx[:n]``, or -1."""
    cdef Py_ssize_t i
    for i in range(1, n):
        if idx[i] == idx[i - 1]:
            return idx[i]
    return -1


cdef inline bint _sort_row(index_t* idx, float* val, Py_ssize_t n, int dup_code,
                           ParseState* st) noexcept nogil:
    """Sort the ``n`` entries of a row given out of order and check they are unique.

    On a repeated index, records ``dup_code`` in ``st`` and returns True.
    """
    cdef int64_t dup
    _sort_pairs(idx, val, n)
    dup = _first_duplicate(idx, n)
    if dup >= 0:
        st.code = dup_code
        st.value = dup
        return True
    return False


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------

cdef inline bint _next_index(int64_t idx, int64_t* last, bint* in_order, Py_ssize_t n,
                             Py_ssize_t cap, int dup_code, Py_ssize_t tok,
                             ParseState* st) noexcept nogil:
    """Check ``idx``, the next label or feature of a row, before it is stored at ``n``.

    An index equal to the previous one (``last``) is an error (``dup_code``),
    as is a full buffer (``cap`` entries); a smaller one clears ``in_order``
    (the row is sorted and checked at its end). Records the error in ``st``
    and returns True, or moves ``last`` on and returns False.
    """
    if idx == last[0]:
        st.code = dup_code
        st.value = idx
        return True
    if idx < last[0]:
        in_order[0] = False
    last[0] = idx
    if n >= cap:
        st.code = ERR_CAPACITY
        st.pos = tok
        return True
    return False


cdef void _parse_rows(const unsigned char* buf, Py_ssize_t start, Py_ssize_t end,
                      Py_ssize_t n_points, int64_t n_features, int64_t n_labels,
                      xidx_t* x_indptr, xidx_t* x_indices, float* x_data, Py_ssize_t x_cap,
                      yidx_t* y_indptr, yidx_t* y_indices, float* y_data, Py_ssize_t y_cap,
                      ParseState* st) noexcept nogil:
    cdef Py_ssize_t p = start
    cdef Py_ssize_t eol, q, t, tok
    cdef Py_ssize_t row = 0
    cdef Py_ssize_t line = 2
    cdef Py_ssize_t xn = 0
    cdef Py_ssize_t yn = 0
    cdef Py_ssize_t row_x0, row_y0
    cdef int64_t idx, last
    cdef bint in_order, has_colon
    cdef double val
    cdef float fval
    cdef const unsigned char* hit

    st.code = PARSE_OK
    x_indptr[0] = 0
    y_indptr[0] = 0
    while row < n_points:
        st.line = line
        st.rows = row
        if p >= end:
            st.code = ERR_TOO_FEW_LINES
            st.pos = end
            return
        hit = <const unsigned char*>memchr(buf + p, 10, end - p)
        eol = end if hit == NULL else hit - buf
        q = p
        row_x0 = xn
        row_y0 = yn

        # Label list: the first token, unless the line starts with a blank
        # or the first token is already an ``index:value`` pair.
        if q < eol and not _is_space(buf[q]):
            t = q
            has_colon = False
            while t < eol and not _is_space(buf[t]):
                if buf[t] == 58:                        # ':'
                    has_colon = True
                    break
                t += 1
            if not has_colon:
                last = -1
                in_order = True
                while True:
                    tok = q
                    q = _parse_index(buf, q, t, &idx)
                    if q == tok:
                        st.code = ERR_LABEL_TOKEN
                        st.pos = p
                        return
                    if idx >= n_labels:
                        st.code = ERR_LABEL_RANGE
                        st.pos = tok
                        return
                    if _next_index(idx, &last, &in_order, yn, y_cap, ERR_DUP_LABEL, tok, st):
                        return
                    y_indices[yn] = <yidx_t>idx
                    yn += 1
                    if q == t:
                        break
                    if buf[q] != 44:                    # ','
                        st.code = ERR_LABEL_TOKEN
                        st.pos = p
                        return
                    q += 1
                if not in_order and _sort_row(y_indices + row_y0, y_data + row_y0,
                                              yn - row_y0, ERR_DUP_LABEL, st):
                    return

        # Features: blank-separated ``index:value`` pairs.
        last = -1
        in_order = True
        while True:
            while q < eol and _is_space(buf[q]):
                q += 1
            if q >= eol:
                break
            tok = q
            q = _parse_index(buf, q, eol, &idx)
            if q == tok or q >= eol or buf[q] != 58:
                st.code = ERR_FEATURE_TOKEN
                st.pos = tok
                return
            if idx >= n_features:
                st.code = ERR_FEATURE_RANGE
                st.pos = tok
                return
            q = _parse_float(buf, q + 1, eol, &val)
            if q < 0 or (q < eol and not _is_space(buf[q])):
                st.code = ERR_VALUE_TOKEN
                st.pos = tok
                return
            fval = <float>val
            if not isfinite(fval):
                st.code = ERR_VALUE_RANGE
                st.pos = tok
                return
            if _next_index(idx, &last, &in_order, xn, x_cap, ERR_DUP_FEATURE, tok, st):
                return
            x_indices[xn] = <xidx_t>idx
            x_data[xn] = fval
            xn += 1
        if not in_order and _sort_row(x_indices + row_x0, x_data + row_x0, xn - row_x0,
                                      ERR_DUP_FEATURE, st):
            return

        row += 1
        x_indptr[row] = <xidx_t>xn
        y_indptr[row] = <yidx_t>yn
        line += 1
        p = eol + 1

    st.rows = row
    st.x_nnz = xn
    st.y_nnz = yn
    # Only blank lines may follow the declared points.
    while p < end:
        if buf[p] == 10:
            line += 1
        elif not _is_space(buf[p]):
            st.code = ERR_TOO_MANY_LINES
            st.line = line
            st.pos = p
            return
        p += 1


def count_separators(const unsigned char[::1] buf, Py_ssize_t start):
    """Return ``(n_colons, n_commas)`` in ``buf[start:]``.

    The number of colons bounds the number of stored features and the number
    of commas plus the number of rows bounds the number of stored labels.
    """
    cdef Py_ssize_t i, n = buf.shape[0]
    cdef Py_ssize_t n_colon = 0, n_comma = 0
    with nogil:
        for i in range(start, n):
            n_colon += buf[i] == 58
            n_comma += buf[i] == 44
    return n_colon, n_comma


def _excerpt(buf, Py_ssize_t pos, pattern=rb"\S+"):
    """Token of ``buf`` starting at ``pos`` (for error messages)."""
    chunk = bytes(buf[pos:pos + 64])
    m = re.match(pattern, chunk)
    tok = m.group(0) if m else b""
    text = tok.decode("ascii", "backslashreplace")
    if len(tok) == len(chunk) and pos + 64 < len(buf):
        text += "..."
    return text


# Message of each parse error, after "line N: ". Fields: ``token`` (the token at
# the error), ``number`` (its leading digits), ``value`` (a repeated index),
# ``rows`` (data lines read) and the header's ``n_points``, ``n_features``, ``n_labels``.
_PARSE_ERRORS = {
    ERR_LABEL_TOKEN: ("invalid label list {token!r}; expected comma-separated non-negative "
                      "integers (or a blank before the features for no labels)"),
    ERR_LABEL_RANGE: ("label index {number} out of range [0, {n_labels}) "
                      "(n_labels={n_labels} in the header)"),
    ERR_DUP_LABEL: "duplicate label index {value}",
    ERR_FEATURE_TOKEN: "invalid feature token {token!r}; expected 'index:value'",
    ERR_FEATURE_RANGE: ("feature index {number} out of range [0, {n_features}) "
                        "(n_features={n_features} in the header)"),
    ERR_VALUE_TOKEN: ("invalid feature value in {token!r}; expected a finite decimal number "
                      "such as 1, 0.25, -2.5 or 1e-3"),
    ERR_VALUE_RANGE: "feature value in {token!r} overflows float32",
    ERR_DUP_FEATURE: ("duplicate feature index {value} (each feature may appear at most "
                      "once per line)"),
    ERR_TOO_FEW_LINES: ("unexpected end of file: the header (line 1) declares "
                        "n_points={n_points} but only {rows} data line(s) follow"),
    ERR_TOO_MANY_LINES: ("unexpected data after the n_points={n_points} data lines declared "
                         "in the header (line 1): {token!r}"),
}


def parse_xc_body(const unsigned char[::1] buf, Py_ssize_t start, Py_ssize_t n_points,
                  int64_t n_features, int64_t n_labels,
                  xidx_t[::1] x_indptr, xidx_t[::1] x_indices, float[::1] x_data,
                  yidx_t[::1] y_indptr, yidx_t[::1] y_indices, float[::1] y_data):
    """Parse the data lines of an XC repository file into CSR arrays.

    ``buf[start:]`` holds the lines after the header. The index arrays must
    have room for every entry (see :func:`count_separators`) and ``y_data``
    must be filled with ones. Returns ``(x_nnz, y_nnz)``; raises ``ValueError``
    naming the line of the first problem.
    """
    cdef ParseState st
    cdef Py_ssize_t end = buf.shape[0]
    if x_indptr.shape[0] != n_points + 1 or y_indptr.shape[0] != n_points + 1:
        raise ValueError("indptr arrays must have n_points + 1 entries")
    if x_data.shape[0] < x_indices.shape[0] or y_data.shape[0] < y_indices.shape[0]:
        raise ValueError("data arrays must be at least as long as the index arrays")
    st.code = PARSE_OK
    st.line = 0
    st.pos = 0
    st.value = -1
    st.rows = 0
    st.x_nnz = 0
    st.y_nnz = 0
    with nogil:
        _parse_rows(&buf[0], start, end, n_points, n_features, n_labels,
                    &x_indptr[0], &x_indices[0] if x_indices.shape[0] else NULL,
                    &x_data[0] if x_data.shape[0] else NULL, x_indices.shape[0],
                    &y_indptr[0], &y_indices[0] if y_indices.shape[0] else NULL,
                    &y_data[0] if y_data.shape[0] else NULL, y_indices.shape[0],
                    &st)
    if st.code == PARSE_OK:
        return st.x_nnz, st.y_nnz

    # ERR_CAPACITY cannot happen: the separator count bounds the entries.
    template = _PARSE_ERRORS.get(st.code, "internal error: entry buffers too small")
    msg = template.format(token=_excerpt(buf, st.pos), number=_excerpt(buf, st.pos, rb"[0-9]+"),
                          value=st.value, rows=st.rows, n_points=n_points,
                          n_features=n_features, n_labels=n_labels)
    raise ValueError(f"line {st.line}: " + msg)


# ---------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------

cdef inline Py_ssize_t _write_uint(char* out, uint64_t v) noexcept nogil:
    """Write ``v`` in decimal; return the number of characters."""
    cdef char tmp[24]
    cdef Py_ssize_t n = 0, i
    while True:
        tmp[n] = <char>(48 + v % 10)
        n += 1
        v //= 10
        if v == 0:
            break
    for i in range(n):
        out[i] = tmp[n - 1 - i]
    return n


cdef inline Py_ssize_t _write_fraction(char* out, const char* digits, int start,
                                      int ndig) noexcept nogil:
    """Write ``.`` and ``digits[start:ndig]`` (nothing when ``start >= ndig``).

    Returns the number of characters. Positional and scientific notation both
    end their mantissa this way.
    """
    if start >= ndig:
        return 0
    out[0] = 46                                         # '.'
    memcpy(out + 1, digits + start, ndig - start)
    return 1 + ndig - start


cdef inline Py_ssize_t _format_positive(double a, int prec, char* out) noexcept nogil:
    """Write the positive finite ``a`` with ``prec`` (<= 17) significant digits.

    The layout follows C's ``%g``: positional notation for decimal exponents
    in ``[-5, prec)``, scientific otherwise, trailing zeros removed. Only ASCII
    digits, ``.``, ``e`` and signs are written, whatever the C locale.
    """
    cdef int e10 = <int>floor(log10(a))
    cdef int k, it, ndig, i, n, ex
    cdef uint64_t lo = POW10_U[prec - 1], hi = POW10_U[prec], d = 0
    cdef double scaled
    cdef char digits[24]

    for it in range(4):
        k = prec - 1 - e10
        if 0 <= k <= 22:
            scaled = a * POW10[k]
        elif -22 <= k < 0:
            scaled = a / POW10[-k]
        else:
            scaled = a * pow(10.0, <double>k)
        d = <uint64_t>nearbyint(scaled)
        if d >= hi:
            e10 += 1
        elif d < lo:
            e10 -= 1
        else:
            break
    ndig = prec
    while ndig > 1 and d % 10 == 0:
        d //= 10
        ndig -= 1
    _write_uint(digits, d)

    if -5 <= e10 < prec:
        if e10 >= 0:
            # Integer part: e10 + 1 characters, zeros where the digits run out.
            n = e10 + 1
            i = ndig if ndig < n else n
            memcpy(out, digits, i)
            memset(out + i, 48, n - i)
            n += _write_fraction(out + n, digits, n, ndig)
        else:
            # "0." and -e10 - 1 zeros before the digits.
            n = 1 - e10
            memset(out, 48, n)
            out[1] = 46
            memcpy(out + n, digits, ndig)
            n += ndig
    else:
        out[0] = digits[0]
        n = 1 + _write_fraction(out + 1, digits, 1, ndig)
        out[n] = 101                                    # 'e'
        n += 1
        ex = e10
        if ex < 0:
            out[n] = 45
            ex = -ex
        else:
            out[n] = 43
        n += 1
        if ex < 10:
            out[n] = 48
            n += 1
        n += _write_uint(out + n, <uint64_t>ex)
    return n


cdef inline Py_ssize_t _format_float32(float v, char* out) noexcept nogil:
    """Write the finite ``v`` with the fewest of 7 or 9 digits that parse back exactly."""
    cdef Py_ssize_t n = 0, m
    cdef double a = v
    cdef double back = 0.0
    if v == 0:
        out[0] = 48
        return 1
    if a < 0:
        out[0] = 45
        n = 1
        a = -a
    if a < 9007199254740992.0 and a == floor(a):
        return n + _write_uint(out + n, <uint64_t>a)
    m = _format_positive(a, 7, out + n)
    if _parse_float(<const unsigned char*>out, 0, n + m, &back) == n + m and <float>back == v:
        return n + m
    return n + _format_positive(a, 9, out + n)


def format_float32(float v):
    """Text written by :func:`write_xc_rows` for the float32 value ``v`` (tests)."""
    cdef char out[48]
    if not isfinite(v):
        raise ValueError("only finite values can be formatted")
    cdef Py_ssize_t n = _format_float32(v, out)
    return PyBytes_FromStringAndSize(out, n).decode("ascii")


def parse_float(bytes text):
    """Value parsed from ``text`` by the loader, as a Python float (tests)."""
    cdef double v = 0.0
    cdef const unsigned char* s = <const unsigned char*><char*>text
    cdef Py_ssize_t n = len(text)
    if _parse_float(s, 0, n, &v) != n:
        raise ValueError(f"invalid number {text!r}")
    return v


def write_xc_rows(write, const xidx_t[::1] x_indptr, const xidx_t[::1] x_indices,
                  const float[::1] x_data, const yidx_t[::1] y_indptr,
                  const yidx_t[::1] y_indices, Py_ssize_t chunk_size=1 << 20):
    """Write CSR rows in the XC repository line format through ``write``.

    ``write`` is called with ``bytes`` chunks of about ``chunk_size`` bytes.
    Each line is the comma-separated label list followed by blank-separated
    ``index:value`` pairs (a line with no labels starts with a blank). Values
    must be finite.
    """
    cdef Py_ssize_t n_rows = x_indptr.shape[0] - 1
    cdef Py_ssize_t i, j, need, used = 0
    cdef Py_ssize_t cap = max(chunk_size, 4096)
    cdef int64_t j0, j1, l0, l1
    cdef char* out
    cdef char* grown
    if y_indptr.shape[0] != x_indptr.shape[0]:
        raise ValueError("X and Y must have the same number of rows")
    out = <char*>malloc(cap)
    if out == NULL:
        raise MemoryError()
    try:
        for i in range(n_rows):
            l0 = y_indptr[i]
            l1 = y_indptr[i + 1]
            j0 = x_indptr[i]
            j1 = x_indptr[i + 1]
            need = 21 * (l1 - l0) + 64 * (j1 - j0) + 2
            if used + need > cap:
                if used:
                    write(PyBytes_FromStringAndSize(out, used))
                    used = 0
                if need > cap:
                    grown = <char*>realloc(out, need)
                    if grown == NULL:
                        raise MemoryError()
                    out = grown
                    cap = need
            for j in range(l0, l1):
                if j > l0:
                    out[used] = 44
                    used += 1
                used += _write_uint(out + used, <uint64_t>y_indices[j])
            for j in range(j0, j1):
                out[used] = 32
                used += 1
                used += _write_uint(out + used, <uint64_t>x_indices[j])
                out[used] = 58
                used += 1
                used += _format_float32(x_data[j], out + used)
            out[used] = 10
            used += 1
        if used:
            write(PyBytes_FromStringAndSize(out, used))
    finally:
        free(out)
