"""The trained state of a SlideClassifier: layout, weights, Adam state, step counter.

:class:`SlideState` owns every array a fit produces and the kernels of ``_network``
read and update; the estimator keeps one as ``_state``. :class:`SlideParams` is the
handful of training parameters the training loops pass on to the kernels (the single
process loop of ``_classifier`` and the label-parallel one of ``_label_parallel``).
Layout of the arrays (all C-contiguous, float32 unless said):

* ``W_in`` (n_features, H0): the sparse input layer, one row per input feature.
* ``dense``: ``b0`` and, for every further hidden layer i, ``W_i`` (H_{i-1}, H_i) then
  ``b_i``; their offsets in ``w_off`` / ``b_off`` (int64), and those of the layers in a
  row of activations in ``a_off``.
* ``W_out`` (n_labels, H_last) neuron-major, ``b_out`` (n_labels,).
* Adam moments of each: ``m_in`` / ``v_in``, ``m_dense`` / ``v_dense``, ``mb_out`` /
  ``vb_out``, and ``m_out`` / ``v_out`` with ``precision="float32"``. With
  ``"bfloat16"`` the output rows train as two halves instead: ``w16_out`` (the weights
  rounded to bfloat16) and a row of ``s16_out`` per neuron [lower 16 bits | m | v]
  (``_network.output_adam``); ``W_out`` is their exact float32 view, brought up to date
  by :meth:`SlideState.sync_output` from the blocks marked in ``dirty_out``.
"""
from dataclasses import dataclass

import numpy as np

from slidelearn._slide import _network
from slidelearn.utils import _bf16
from slidelearn.utils._aligned import aligned_empty, aligned_zeros, cache_aligned
from slidelearn.utils._threads import single_threaded_blas

__all__ = ["SlideParams", "SlideState"]


@dataclass(frozen=True)
class SlideParams:
    """The training parameters the kernels need (from ``SlideClassifier``'s of the
    same names; ``reservoir``: ``bucket_policy == "reservoir"``; ``pick_all``:
    ``loss == "pick_all"``)."""

    batch_size: int
    min_active: int
    active_threshold: int
    n_tables: int
    n_codes: int
    bucket_size: int
    reservoir: bool
    beta_1: float
    beta_2: float
    epsilon: float
    alpha: float
    dropout: float
    precision: str
    pick_all: bool = False


def _uniform_float32(rng, bound, shape):
    """``rng.uniform(-bound, bound, size=shape).astype(np.float32)``, cache-line
    aligned, drawn in blocks of 2**20 values straight into the float32 array: the same
    values, without the full-size float64 draw and float32 copy (a 670k x 128 output
    layer would otherwise pass through 1 GB of transient, freshly faulted memory)."""
    out = aligned_empty(shape, np.float32)
    flat = out.reshape(-1)
    step = 1 << 20
    for s in range(0, flat.shape[0], step):
        flat[s:s + step] = rng.uniform(-bound, bound, size=min(step, flat.shape[0] - s))
    return out


class SlideState:
    """Layout, weights and optimizer state of a SLIDE network (see the module
    docstring for the arrays).

    Parameters
    ----------
    sizes : sequence of int
        Widths of the hidden layers.

    Attributes
    ----------
    sizes, w_off, b_off, a_off : ndarray of int64 of shape (n_layers,)
        Layer widths; offsets of the hidden weights and biases in ``dense`` and of the
        layers in a row of activations.
    W_in, dense, W_out, b_out : ndarray of float32
        The weights.
    m_in, v_in, m_dense, v_dense, mb_out, vb_out : ndarray of float32
        Adam moments; ``m_out`` / ``v_out`` those of ``W_out`` with
        ``precision="float32"`` (None otherwise).
    w16_out, s16_out, dirty_out : ndarray of uint16, uint16, uint8, or None
        The output layer's bfloat16 halves and state rows and its blocks of rows not
        yet synced into ``W_out``, with ``precision="bfloat16"`` (None otherwise).
    step : int
        Adam steps taken (the bias correction's t).

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn._slide._state import SlideState
    >>> state = SlideState.draw((8,), n_features=5, n_labels=3,
    ...                         rng=np.random.default_rng(0), input_energy=1.0)
    >>> [w.shape for w in state.coefs()], state.precision
    ([(5, 8), (3, 8)], 'float32')
    """

    # the arrays that hold one row per output neuron (label-parallel ranks hold a slice)
    OUTPUT = ("W_out", "b_out", "m_out", "v_out", "mb_out", "vb_out")
    _LAYOUT = ("sizes", "w_off", "b_off", "a_off")
    _WEIGHTS = ("W_in", "dense", "W_out", "b_out")
    _ADAM = ("m_in", "v_in", "m_dense", "v_dense", "m_out", "v_out", "mb_out", "vb_out")
    _BF16 = ("w16_out", "s16_out", "dirty_out")
    _ARRAYS = _LAYOUT + _WEIGHTS + _ADAM + _BF16
    # arrays whose rows the kernels stream one at a time: kept on cache lines
    _ROWS = ("W_in", "W_out", "m_in", "v_in", "m_out", "v_out", "w16_out", "s16_out")

    def __init__(self, sizes):
        sizes = [int(s) for s in sizes]
        for name in self._ARRAYS:
            setattr(self, name, None)
        self.w_off = np.zeros(len(sizes), dtype=np.int64)
        self.b_off = np.zeros(len(sizes), dtype=np.int64)
        self.a_off = np.zeros(len(sizes), dtype=np.int64)
        pos = 0
        for i, s in enumerate(sizes):
            if i > 0:
                self.w_off[i] = pos
                pos += sizes[i - 1] * s
                self.a_off[i] = self.a_off[i - 1] + sizes[i - 1]
            self.b_off[i] = pos
            pos += s
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.step = 0

    @classmethod
    def draw(cls, sizes, n_features, n_labels, rng, input_energy, label_slice=None,
             output_init="glorot"):
        """A new network drawn from ``rng``, with zero Adam state in float32.

        Parameters
        ----------
        sizes : sequence of int
            Widths of the hidden layers.
        n_features, n_labels : int
            Input features and output neurons.
        rng : numpy.random.Generator
            Draws the hidden layers (Glorot), the input layer and the output layer,
            in that order.
        input_energy : float
            Mean squared norm of the training rows; sets the scale of the input layer.
        label_slice : (int, int) or None
            Draw only output neurons ``lo:hi``, with the values a whole draw gives them
            (label-parallel training), and leave ``rng`` where a whole draw leaves it.
        output_init : {"glorot", "fan_in"}, default="glorot"
            The output layer's draw: Glorot's ``U(+-sqrt(6 / (H + n_labels)))`` and zero
            biases, or ``U(+-1 / sqrt(H))`` for the weights and the biases (PyTorch's
            ``nn.Linear``), which does not shrink with the number of labels.

        Returns
        -------
        state : SlideState
        """
        self = cls(sizes)
        sizes, H = self.sizes, int(self.sizes[-1])
        self.dense = np.zeros(int(self.b_off[-1] + sizes[-1]), dtype=np.float32)

        def glorot(fan_in, fan_out, shape):
            return _uniform_float32(rng, np.sqrt(6.0 / (fan_in + fan_out)), shape)

        for i in range(1, len(sizes)):
            n = int(sizes[i - 1] * sizes[i])
            self.dense[self.w_off[i]: self.w_off[i] + n] = glorot(sizes[i - 1], sizes[i], n)
        # The input layer starts with pre-activations sum_k W_kj x_k of rms 1/8 for a
        # row of the mean energy ||x||^2, whatever the number of features and the scale
        # of the values. Glorot's bound sqrt(6 / (n_features + H)) counts n_features
        # inputs of unit variance; a sparse row brings ||x||^2 of signal instead, so
        # on unit tf-idf rows of 135,909 features (Amazon-670K shaped) it starts the
        # layer ~30x smaller, the hidden bias (a step every batch, where a feature's
        # row gets one every ~14 batches) outgrows it, the hidden layer collapses onto
        # one direction and a few frequent labels win every row. rms 1/8 is what Glorot
        # gives a unit input and H = 128; the measurements on the Amazon shape, Bibtex
        # and small tf-idf vocabularies are in doc/user_guide/slide.rst.
        # (all-zero rows: any scale; an energy below 1e-30, of values near the float32
        # underflow, counts as 1e-30, so that the bound cannot overflow float32)
        energy = max(input_energy, 1e-30) if input_energy > 0 else 1.0
        self.W_in = _uniform_float32(rng, np.sqrt(3.0 / 64.0 / energy),
                                     (n_features, int(sizes[0])))
        lo, hi = (0, n_labels) if label_slice is None else label_slice
        # rows lo:hi of the (n_labels, H) draw: one 64-bit step of the generator per
        # value, so skip lo * H of them, then move past the whole matrix
        start = rng.bit_generator.state
        rng.bit_generator.advance(lo * H)
        if output_init == "fan_in":
            self.W_out = _uniform_float32(rng, 1.0 / np.sqrt(H), (hi - lo, H))
        else:
            self.W_out = glorot(H, n_labels, (hi - lo, H))
        rng.bit_generator.state = start
        rng.bit_generator.advance(n_labels * H)
        if output_init == "fan_in":  # every label's bias drawn, this slice's kept
            self.b_out = np.ascontiguousarray(
                rng.uniform(-1.0 / np.sqrt(H), 1.0 / np.sqrt(H), n_labels)[lo:hi],
                dtype=np.float32)
        else:
            self.b_out = np.zeros(hi - lo, dtype=np.float32)
        self.m_in = aligned_zeros(self.W_in.shape, np.float32)
        self.v_in = aligned_zeros(self.W_in.shape, np.float32)
        self.m_dense = np.zeros(self.dense.shape[0], dtype=np.float32)
        self.v_dense = np.zeros(self.dense.shape[0], dtype=np.float32)
        # the output moments: made by set_output_precision, in the layout of the
        # precision (straight into the bfloat16 state: no transient float32 copy)
        self.mb_out = np.zeros(hi - lo, dtype=np.float32)
        self.vb_out = np.zeros(hi - lo, dtype=np.float32)
        return self

    @classmethod
    def from_dicts(cls, model, opt, step):
        """The state of a model pickled before this class (``_model`` and ``_opt``
        dicts of the arrays above, and the estimator's ``_step``)."""
        self = cls.__new__(cls)
        self.__setstate__(dict(model, **opt, step=int(step)))
        return self

    # ------------------------------------------------------------ pickling
    def __getstate__(self):
        state = {name: getattr(self, name) for name in self._ARRAYS
                 if getattr(self, name) is not None}
        state["step"] = self.step
        return state

    def __setstate__(self, state):
        for name in self._ARRAYS:
            setattr(self, name, state.get(name))
        self.step = int(state.get("step", 0))

    # ------------------------------------------------------------ views
    @property
    def precision(self):
        """``"bfloat16"`` when the output layer trains as bfloat16 halves, else
        ``"float32"``."""
        return "bfloat16" if self.w16_out is not None else "float32"

    def coefs(self):
        """The weight matrices: input layer, hidden layers (H_{i-1}, H_i), output layer
        (n_labels, H_last); views, not copies."""
        out = [self.W_in]
        for i in range(1, len(self.sizes)):
            n_in, n_out = int(self.sizes[i - 1]), int(self.sizes[i])
            off = int(self.w_off[i])
            out.append(self.dense[off: off + n_in * n_out].reshape(n_in, n_out))
        return out + [self.W_out]

    def intercepts(self):
        """The biases of the hidden layers and of the output layer (views)."""
        return [self.dense[o: o + s] for o, s in zip(self.b_off, self.sizes)] + [self.b_out]

    def output_rows(self):
        """The output weights as training sees them: ``W_out``, or with
        ``precision="bfloat16"`` their bfloat16 rounding ``w16_out``."""
        return self.W_out if self.w16_out is None else self.w16_out

    def arrays(self):
        """{name: array} of every array held (layout, weights, optimizer state)."""
        return {name: getattr(self, name) for name in self._ARRAYS
                if getattr(self, name) is not None}

    # ------------------------------------------------------------ training support
    def snapshot(self):
        """Copies of every array, for :meth:`restore` (the step counter goes on)."""
        return {name: a.copy() for name, a in self.arrays().items()}

    def restore(self, snapshot):
        """Write the arrays of a :meth:`snapshot` back, in place."""
        for name, a in snapshot.items():
            getattr(self, name)[...] = a

    def ensure_writable(self):
        """Private copies of the arrays of a state loaded read-only (joblib's
        ``mmap_mode="r"``), so that training can go on."""
        if not (self.W_out.flags.writeable and self.W_in.flags.writeable):
            for name, a in self.arrays().items():
                setattr(self, name, np.array(a))

    def align_rows(self):
        """Rows of the streamed arrays on cache lines again after unpickling (a copy,
        once: aligned arrays are kept as they are). bfloat16 state rows pickled with
        the earlier layout [lo | m | v | bias state] are cut to [lo | m | v]: lo, m and
        v sit where they did, and the bias state was synced into b_out, mb_out and
        vb_out."""
        s16, H = self.s16_out, self.W_out.shape[1]
        if s16 is not None and s16.shape[1] != _network.bf16_state_width(H):
            rows = aligned_zeros((s16.shape[0], _network.bf16_state_width(H)), np.uint16)
            rows[:, :3 * H] = s16[:, :3 * H]
            self.s16_out = rows
        for name in self._ROWS:
            if getattr(self, name) is not None:
                setattr(self, name, cache_aligned(getattr(self, name)))

    def set_output_precision(self, precision, n_threads):
        """Store the output layer for ``precision``: ``W_out`` with float32 moments
        ``m_out`` / ``v_out``, or for ``"bfloat16"`` the halves ``w16_out`` and
        ``s16_out`` (see the module docstring), the biases and their moments staying
        float32 arrays. Converts a state of the other precision: the weights exactly,
        the moments rounded to nearest even."""
        W = self.W_out
        H = W.shape[1]
        if precision == "bfloat16" and self.w16_out is None:
            m, v = self.m_out, self.v_out  # None: a new model
            self.m_out = self.v_out = None
            w16 = aligned_zeros(W.shape, np.uint16)
            s16 = aligned_zeros((W.shape[0], _network.bf16_state_width(H)), np.uint16)
            _network.split_bf16_rows(W, w16, s16, n_threads)
            if m is not None:
                step = max(1, (1 << 22) // max(H, 1))  # blocks: no full-size temporaries
                for r in range(0, W.shape[0], step):
                    s16[r:r + step, H:2 * H] = _bf16.to_bf16(m[r:r + step])
                    s16[r:r + step, 2 * H:3 * H] = _bf16.to_bf16(v[r:r + step])
            self.w16_out, self.s16_out = w16, s16
            self.dirty_out = np.zeros(-(-W.shape[0] // _network.DIRTY_ROWS), dtype=np.uint8)
        elif precision == "float32" and self.w16_out is None and self.m_out is None:
            self.m_out = aligned_zeros(W.shape, np.float32)
            self.v_out = aligned_zeros(W.shape, np.float32)
        elif precision == "float32" and self.w16_out is not None:
            self.sync_output(n_threads)
            s16 = self.s16_out
            self.w16_out = self.s16_out = self.dirty_out = None
            self.m_out = cache_aligned(_bf16.from_bf16(np.ascontiguousarray(s16[:, H:2 * H])))
            self.v_out = cache_aligned(_bf16.from_bf16(np.ascontiguousarray(s16[:, 2 * H:3 * H])))

    def sync_output(self, n_threads):
        """With ``precision="bfloat16"``, write the output rows that training changed
        into ``W_out``, joined from their halves (prediction, ``coefs_``, pickling and a
        change of precision read it; training itself then does not)."""
        if self.w16_out is not None and self.W_out.flags.writeable:
            # (a read-only state was loaded: nothing has trained it since its sync)
            _network.sync_bf16_rows(self.w16_out, self.s16_out, self.W_out, self.dirty_out,
                                    n_threads)

    def hash_output(self, lsh, seed, n_threads, bucket_size, reservoir, center=None,
                    work=None, probe=0):
        """(Re)build the tables of ``lsh`` from the output rows as training sees them
        (:meth:`output_rows`), centred on ``center`` (default: their mean). With a
        ``work`` (``_network.Workspace``), the training tables keep their arrays and the
        code buffer between rebuilds; ``probe`` rows are kept for ``lsh.stale_share``."""
        # dense SimHash projections are applied by sgemv inside the OpenMP loop
        with single_threaded_blas():
            codes = lsh.fill(self.output_rows(), n_threads, seed, bucket_size, reservoir,
                             center=center,
                             buckets=None if work is None else work.hash_buckets,
                             reuse=work is not None, bias=self.b_out, probe=probe)
        if work is not None:
            work.hash_buckets = codes

    def output_arrays(self):
        """{name: array} of the arrays with one row per output neuron."""
        return {name: getattr(self, name) for name in self.OUTPUT
                if getattr(self, name) is not None}

    def set_output_arrays(self, arrays):
        """Replace arrays of :meth:`output_arrays` (a label slice, or all of them)."""
        for name, a in arrays.items():
            if name not in self.OUTPUT:
                raise ValueError(f"{name} is not an output array")
            setattr(self, name, a)
