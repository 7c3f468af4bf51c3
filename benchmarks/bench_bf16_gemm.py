"""GFLOP/s of the BF16 GEMM (slidelearn.utils._bf16.gemm_bf16) against scipy's fp32
sgemm on the MLP layer shapes of the DLRM SC20 "Small" configuration.

For each product of a dense layer (forward ``Y = X W^T``, backward ``dX = dY W``,
weight gradient ``dW = dY^T X``) the script times, in the same run:

* ``sgemm`` (scipy.linalg.blas, BLAS limited to 1, then 2 threads with threadpoolctl),
  called on Fortran-order views so that no operand is copied;
* ``gemm_bf16`` with ``n_threads=1``, then 2, on bf16 operands;
* the fp32 -> bf16 conversion of the operand a bf16 layer must convert for that product
  (the activations X for the forward, the incoming gradient dY for dX; dW reuses both,
  and the weights are kept in bf16 by split-SGD), so that ``net`` = GEMM + conversion
  shows the gain of a bf16 layer as a whole.

Every time is the median of ``--repeats`` runs. Usage::

    python benchmarks/bench_bf16_gemm.py [--repeats 7] [--level avx512_bf16]

``--level`` sets SLIDELEARN_CPU_LEVEL (before the import) to time a lower code path.
"""
import argparse
import os
import sys
import time


def _median_time(fn, repeats):
    fn()  # warm-up (page faults, packing buffers)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--level", default=None, help="SLIDELEARN_CPU_LEVEL to force")
    args = parser.parse_args(argv)
    if args.level:
        os.environ["SLIDELEARN_CPU_LEVEL"] = args.level

    import numpy as np
    from scipy.linalg.blas import sgemm
    from threadpoolctl import threadpool_limits

    from slidelearn.utils import _bf16 as bf

    rng = np.random.default_rng(0)

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def sgemm_rowmajor(A, B, ta, tb, C):
        # row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: pass the
        # transposed (Fortran-ordered) views, nothing is copied
        return sgemm(1.0, B.T, A.T, trans_a=int(tb), trans_b=int(ta), c=C.T, overwrite_c=1)

    batch = 2048
    cases = []  # name, A (fp32), B (fp32), transa, transb, operand converted
    for d_in, d_out in ((1024, 1024), (512, 512)):
        X, W, dY = f32(batch, d_in), f32(d_out, d_in), f32(batch, d_out)
        tag = f"{batch}x{d_in} @ ({d_out}x{d_in})^T"
        cases.append((f"fwd  Y=XW^T  {tag}", X, W, False, True, X))
        if d_in == 1024:
            cases.append((f"bwd  dX=dYW  {batch}x{d_out} @ {d_out}x{d_in}", dY, W, False,
                          False, dY))
            cases.append((f"grad dW=dY^TX ({batch}x{d_out})^T @ {batch}x{d_in}", dY, X, True,
                          False, None))

    print(f"level {bf.cpu_level()}, median of {args.repeats} runs, GFLOP/s "
          f"(ratio = bf16 / sgemm at the same thread count)")
    head = (f"{'product':48s} {'sgemm1':>7s} {'bf16_1':>7s} {'ratio':>6s} {'net1':>6s} "
            f"{'sgemm2':>7s} {'bf16_2':>7s} {'ratio':>6s} {'net2':>6s} {'cvt ms':>7s}")
    print(head)
    print("-" * len(head))
    for name, A, B, ta, tb, conv in cases:
        m = A.shape[1] if ta else A.shape[0]
        k = A.shape[0] if ta else A.shape[1]
        n = B.shape[0] if tb else B.shape[1]
        flops = 2.0 * m * n * k
        Ab, Bb = bf.to_bf16(A), bf.to_bf16(B)
        C32 = np.empty((m, n), np.float32)
        Cbf = np.empty((m, n), np.float32)
        row = [name]
        for nt in (1, 2):
            # OpenBLAS worker threads spin for a while after a threaded call (and
            # libgomp's briefly after a parallel region): on 2 cores they would steal
            # the other's core, so let them fall asleep between the two libraries.
            t_b = _median_time(lambda: bf.gemm_bf16(Ab, Bb, ta, tb, C=Cbf, n_threads=nt),
                               args.repeats)
            t_c = (_median_time(lambda: bf.to_bf16(conv, n_threads=nt), args.repeats)
                   if conv is not None else 0.0)
            time.sleep(0.3)
            with threadpool_limits(limits=nt, user_api="blas"):
                t_s = _median_time(lambda: sgemm_rowmajor(A, B, ta, tb, C32), args.repeats)
            time.sleep(0.3)
            row += [flops / t_s / 1e9, flops / t_b / 1e9, t_s / t_b, t_s / (t_b + t_c)]
            if nt == 1:
                t_c1 = t_c
        # sanity: the two agree to bf16 input rounding
        rel = float(np.abs(Cbf - C32).max() / np.abs(C32).max())
        assert rel < 2e-2, rel
        print(f"{row[0]:48s} {row[1]:7.1f} {row[2]:7.1f} {row[3]:5.2f}x {row[4]:5.2f}x "
              f"{row[5]:7.1f} {row[6]:7.1f} {row[7]:5.2f}x {row[8]:5.2f}x {t_c1 * 1e3:7.2f}")
    print("net = sgemm time / (bf16 GEMM + fp32->bf16 conversion of the fresh operand); "
          "cvt ms = that conversion, 1 thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
