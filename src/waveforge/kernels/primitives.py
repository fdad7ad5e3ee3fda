"""Low-level pieces for kernels that split one product across threads: a spin barrier, float16
weights, and MKL's packed GEMM.

**Barrier.** Worker threads run one ``nogil`` numba loop each and meet several thousand times a
second (after every matrix product whose output the next product reads in full). A
``threading.Barrier`` costs tens of microseconds; this one is a monotonic counter per thread in
shared memory (one cache line each), written with a release store and polled with acquire loads,
about 0.5 us per meeting on two cores. After ~0.1 ms of spinning it sleeps in short naps, so that
on a loaded machine a waiting thread does not hold a core its late partner needs.

**float16 weights.** numba has no float16 type, so weights travel as ``uint16`` bit patterns and
:func:`half_to_float` widens them with one LLVM ``fpext`` (``vcvtph2ps`` on x86), which vectorises.

**MKL packed GEMM.** For a few rows (a batch of 32 streams) OpenBLAS's sgemm re-packs the weight
matrix on every call and reaches ~30% of the GEMM peak; MKL's ``cblas_sgemm_pack`` /
``cblas_sgemm_compute`` pack it once and reach ~60%. PyTorch's x86 wheels link MKL statically and
export these symbols from ``libtorch_cpu``; :func:`mkl` finds them (``None`` elsewhere, and callers
fall back to ``np.dot``) and checks one small product against numpy before trusting them.

Note: numba keys a kernel's on-disk cache on the kernel's own source file, not on this one, which
kernels inline; after editing this file, delete ``kernels/__pycache__/*.nb*``.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os

import numpy as np
import torch

try:  # optional, as in kernels.wavenet (which imports this module, so it cannot import numba from there)
    import numba
except Exception:  # pragma: no cover - depends on the environment
    numba = None

# cache-line stride between the per-thread counters of a barrier (int64 entries)
SYNC_STRIDE = 16
# polls of a partner's counter before sleeping (x86 ``pause`` takes 16 ns on the Emerald Rapids
# Xeon we measure on, up to ~50 ns on older parts: 0.1-0.3 ms). Waits on an idle machine are
# shorter; a partner this late has lost its core to another process, and sleeping frees ours for
# it (with sched_yield instead, two lock-step threads ran at half the speed of one thread on a
# machine busy with a training job; with naps, at two thirds)
_SPINS_BEFORE_SLEEP = 6000
_SLEEP_US = 20

# CBLAS enum values (mkl_cblas.h)
_ROW_MAJOR, _NO_TRANS, _PACKED, _B_MATRIX = 101, 111, 151, 162


def parameter_key(model: torch.nn.Module) -> tuple:
    """Every parameter's storage and version: any in-place update (an optimiser step,
    ``load_state_dict``) changes it, so a weight layout cached under it is never stale."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def new_sync(n_threads: int) -> np.ndarray:
    """Shared barrier state for ``n_threads`` threads (counters start at 0)."""
    return np.zeros(n_threads * SYNC_STRIDE, np.int64)


if numba is not None:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    def _element_pointer(context, builder, array_type, array, index):
        return builder.gep(context.make_array(array_type)(context, builder, array).data, [index])

    @intrinsic
    def _load_acquire(typingctx, array, index):
        """``array[index]`` (int64) as an atomic acquire load: later reads cannot move before it."""

        def codegen(context, builder, sig, args):
            return builder.load_atomic(_element_pointer(context, builder, sig.args[0], *args), "acquire", 8)

        return types.int64(array, index), codegen

    @intrinsic
    def _store_release(typingctx, array, index, value):
        """``array[index] = value`` (int64) as an atomic release store: earlier writes are visible first."""

        def codegen(context, builder, sig, args):
            ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
            builder.store_atomic(args[2], ptr, "release", 8)
            return context.get_dummy_value()

        return types.void(array, index, value), codegen

    @intrinsic
    def _cpu_pause(typingctx):
        """x86 ``pause`` (numba's LLVM has no inline-asm parser, hence the intrinsic)."""

        def codegen(context, builder, sig, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
            return context.get_dummy_value()

        return types.void(), codegen

    @intrinsic
    def _sleep_briefly(typingctx):
        """``usleep(_SLEEP_US)`` (POSIX)."""

        def codegen(context, builder, sig, args):
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32, [i32]), "usleep")
            return builder.call(fn, [ir.Constant(i32, _SLEEP_US)])

        return types.int32(), codegen

    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):  # pragma: no cover - the pause hint is x86 only

        @numba.njit(inline="always")
        def _spin_hint():
            pass

    else:

        @numba.njit(inline="always")
        def _spin_hint():
            _cpu_pause()

    @numba.njit(nogil=True, inline="always")
    def barrier(sync, thread, n_threads, epoch):
        """Wait until all ``n_threads`` threads have called this with the same ``epoch``; returns ``epoch + 1``.

        Every thread counts its calls (``epoch`` starts at 1), so no counter is ever reset."""
        if n_threads > 1:
            _store_release(sync, thread * SYNC_STRIDE, epoch)
            for other in range(n_threads):
                spins = 0
                while _load_acquire(sync, other * SYNC_STRIDE) < epoch:
                    _spin_hint()
                    spins += 1
                    if spins == _SPINS_BEFORE_SLEEP:
                        _sleep_briefly()
                        spins = 0
        return epoch + 1

    @numba.njit(nogil=True, cache=True, fastmath=True)
    def read_sum(x):
        """Sum of a float32 vector, vectorised: a pure memory-read loop for bandwidth measurements."""
        total = np.float32(0.0)
        for i in range(x.shape[0]):
            total += x[i]
        return total

    @intrinsic
    def half_to_float(typingctx, bits):
        """float16 bit pattern (uint16) -> float32, exactly."""

        def codegen(context, builder, sig, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

        return types.float32(types.uint16), codegen

    @intrinsic
    def int_bits_to_float(typingctx, bits):
        """int32 bit pattern -> the float32 with those bits (a free bitcast, so loops using it vectorise)."""

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.int32), codegen

    @intrinsic
    def sgemm_packed(typingctx, function, m, n, k, a, packed_b, c):
        """``c (m, n) = a (m, k) @ B`` through MKL's ``cblas_sgemm_compute`` at address ``function``,
        ``B`` packed by ``cblas_sgemm_pack`` (row-major, 32-bit MKL_INT as in PyTorch's LP64 MKL)."""
        i32, f32 = ir.IntType(32), ir.FloatType()
        fp = f32.as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32] * 6 + [fp, i32, fp, i32, f32, fp, i32])

        def codegen(context, builder, sig, args):
            fn_addr, m_, n_, k_, a_, b_, c_ = args
            callee = builder.inttoptr(fn_addr, fnty.as_pointer())
            ptrs = [context.make_array(t)(context, builder, v).data for t, v in zip(sig.args[4:], (a_, b_, c_))]
            m32, n32, k32 = (builder.trunc(v, i32) for v in (m_, n_, k_))
            const = lambda v: ir.Constant(i32, v)  # noqa: E731
            builder.call(callee, [const(_ROW_MAJOR), const(_NO_TRANS), const(_PACKED), m32, n32, k32,
                                  ptrs[0], k32, ptrs[1], n32, ir.Constant(f32, 0.0), ptrs[2], n32])
            return context.get_dummy_value()

        return types.void(types.int64, types.int64, types.int64, types.int64, a, packed_b, c), codegen

    @numba.njit(nogil=True, cache=True)
    def _sgemm_packed_check(function, a, packed_b, c):
        sgemm_packed(function, a.shape[0], c.shape[1], a.shape[1], a, packed_b, c)


class MKL:
    """MKL's packed-GEMM entry points (from PyTorch's libtorch_cpu); see :func:`mkl`."""

    def __init__(self, lib: ctypes.CDLL):
        self._pack_size = lib.cblas_sgemm_pack_get_size
        self._pack_size.restype = ctypes.c_size_t
        self._pack_size.argtypes = [ctypes.c_int] * 4
        self._pack = lib.cblas_sgemm_pack
        self._pack.restype = None
        self._pack.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self._set_local_threads = lib.MKL_Set_Num_Threads_Local  # C interface (takes the count by value)
        self._set_local_threads.restype = ctypes.c_int
        self._set_local_threads.argtypes = [ctypes.c_int]
        self.compute = ctypes.cast(lib.cblas_sgemm_compute, ctypes.c_void_p).value

    def sequential(self) -> int:
        """Make MKL single-threaded in the calling thread (we thread ourselves); returns the previous
        setting for :meth:`restore`. MKL asks that packing and computing use the same thread count."""
        return self._set_local_threads(1)

    def restore(self, previous: int) -> None:
        self._set_local_threads(previous)

    def packed_size(self, n_in: int, n_out: int, rows: int) -> int:
        """float32 elements that :meth:`pack` needs for a ``(n_in, n_out)`` matrix (~7.6 MB more than
        the matrix: MKL's own layout; untouched pages of it are never mapped in)."""
        return (self._pack_size(_B_MATRIX, rows, n_out, n_in) + 3) // 4

    def pack(self, w: np.ndarray, rows: int, out: np.ndarray) -> None:
        """``w (K, N)`` -> ``out``: MKL's packed form of the right-hand side of ``(rows, K) @ (K, N)``.

        The packed form depends on its address (it breaks when copied), so it is written in place."""
        k, n = w.shape
        w = np.ascontiguousarray(w, np.float32)
        assert out.dtype == np.float32 and out.flags.c_contiguous and out.size >= self.packed_size(k, n, rows)
        self._pack(_ROW_MAJOR, _B_MATRIX, _NO_TRANS, rows, n, k, 1.0, w.ctypes.data, n, out.ctypes.data)


@functools.lru_cache(maxsize=1)
def mkl() -> MKL | None:
    """The MKL inside PyTorch, if its packed GEMM is exported and computes a test product right."""
    if numba is None or not torch.backends.mkl.is_available():
        return None
    for path in glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.*")):
        try:
            lib = MKL(ctypes.CDLL(path))
        except (OSError, AttributeError):
            continue
        rng = np.random.default_rng(0)
        a, w = rng.standard_normal((3, 37), np.float32), rng.standard_normal((37, 29), np.float32)
        c = np.zeros((3, 29), np.float32)
        packed = np.empty(lib.packed_size(37, 29, 3), np.float32)
        previous = lib.sequential()
        try:
            lib.pack(w, 3, packed)
            _sgemm_packed_check(lib.compute, a, packed, c)
        finally:
            lib.restore(previous)
        if np.allclose(c, a @ w, atol=1e-4):
            return lib
    return None
