r"""A vector of W float64 as a numba type, and the operations the compiled SGD needs.

numba's auto-vectoriser decides by itself whether a loop becomes vector code; the lanes
and BLAS engines (:mod:`meanfield._fast_lanes`, :mod:`meanfield._fast_blas`) instead
write their arithmetic on explicit vectors ``<W x double>`` (W = 8: one AVX-512
register, two AVX2 registers), each operation one LLVM vector instruction, so that W runs
(or W neurons) advance in the W lanes whatever the auto-vectoriser does.  Every operation
is the IEEE-754 operation of the scalar code lane by lane (no fast-math), so lane r
computes exactly what the scalar code computes on run r:

.. math:: (a \odot b)_r = a_r \odot b_r,\qquad \mathrm{fma}(a, b, c)_r = \mathrm{rn}(a_r b_r + c_r)

:func:`fma` is the scalar fused multiply-add (``llvm.fma``, one rounding) that both the
serial kernels and the lanes use at the same places.  :func:`atomic_add`,
:func:`atomic_load` and :func:`os_yield` build the BLAS engine's spin barrier.  This
module imports numba.
"""

from __future__ import annotations

import operator
import sys
from typing import Any

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

__all__ = [
    "W", "atomic_add", "atomic_load", "fma", "os_yield", "vec", "vfma", "vget", "vload",
    "vload_part", "vrelu", "vset", "vsplat", "vstep", "vstore", "vstore_part", "vsum",
]  # fmt: skip

W = 8
"""Lanes of a vector (8 float64 = one AVX-512 register)."""
_VEC = ir.VectorType(ir.DoubleType(), W)


class _VecType(types.Type):
    def __init__(self) -> None:
        super().__init__(name=f"float64x{W}")


vec = _VecType()


@register_model(_VecType)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm: Any, fe_type: Any) -> None:
        super().__init__(dmm, fe_type, _VEC)


def _vec_ptr(context: Any, builder: Any, arrty: Any, arr: Any, off: Any) -> Any:
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [off]), _VEC.as_pointer())


@intrinsic
def vload(typingctx: Any, arr: Any, off: Any) -> Any:
    """``arr[off : off + W]`` as a vector (``arr`` 1-D contiguous float64)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.load(_vec_ptr(context, builder, sig.args[0], args[0], args[1]), align=8)

    return vec(arr, off), codegen


@intrinsic
def vstore(typingctx: Any, arr: Any, off: Any, v: Any) -> Any:
    """``arr[off : off + W] = v``."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        builder.store(args[2], _vec_ptr(context, builder, sig.args[0], args[0], args[1]), align=8)
        return context.get_dummy_value()

    return types.void(arr, off, v), codegen


@intrinsic
def vsplat(typingctx: Any, x: Any) -> Any:
    """Return the vector whose W lanes are the scalar ``x``."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        v = builder.insert_element(ir.Constant(_VEC, ir.Undefined), args[0], ir.IntType(32)(0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W)
        return builder.shuffle_vector(v, v, mask)

    return vec(types.float64), codegen


@intrinsic
def vget(typingctx: Any, v: Any, lane: Any) -> Any:
    """Lane ``lane`` of ``v``."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.extract_element(args[0], args[1])

    return types.float64(vec, lane), codegen


@intrinsic
def vset(typingctx: Any, v: Any, lane: Any, x: Any) -> Any:
    """``v`` with lane ``lane`` replaced by ``x``."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.insert_element(args[0], args[2], args[1])

    return vec(vec, lane, types.float64), codegen


@intrinsic
def vrelu(typingctx: Any, v: Any) -> Any:
    """``0.0 if u < 0.0 else u`` lane by lane (NaN stays NaN, −0.0 stays −0.0)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        zero = ir.Constant(_VEC, [0.0] * W)
        return builder.select(builder.fcmp_ordered("<", args[0], zero), zero, args[0])

    return vec(vec), codegen


@intrinsic
def vstep(typingctx: Any, v: Any) -> Any:
    """``1.0 if u >= 0.0 else 0.0`` lane by lane (σ'(0) = 1 for ReLU; NaN gives 0)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        zero, one = ir.Constant(_VEC, [0.0] * W), ir.Constant(_VEC, [1.0] * W)
        return builder.select(builder.fcmp_ordered(">=", args[0], zero), one, zero)

    return vec(vec), codegen


@intrinsic
def vfma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """a·b + c lane by lane, rounded once (``llvm.fma``)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        fnty = ir.FunctionType(_VEC, [_VEC, _VEC, _VEC])
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.v{W}f64")
        return builder.call(fn, args)

    return vec(vec, vec, vec), codegen


@intrinsic
def fma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """a·b + c for float64 scalars, rounded once (``llvm.fma``; vectorised in loops)."""
    f64 = types.float64

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        vals = [context.cast(builder, v, t, f64) for v, t in zip(args, sig.args, strict=True)]
        dbl = ir.DoubleType()
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(dbl, [dbl, dbl, dbl]), "llvm.fma.f64"
        )
        return builder.call(fn, vals)

    return f64(a, b, c), codegen


def _binop(name: str) -> Any:
    @intrinsic
    def op(typingctx: Any, a: Any, b: Any) -> Any:
        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return getattr(builder, name)(args[0], args[1])

        return vec(vec, vec), codegen

    return op


for _op, _name in (
    (operator.add, "fadd"),
    (operator.sub, "fsub"),
    (operator.mul, "fmul"),
    (operator.truediv, "fdiv"),
):

    def _register(impl: Any, op: Any = _op) -> None:
        @overload(op)
        def _ov(a, b):  # type: ignore[no-untyped-def]  # (numba compares the signatures)
            if isinstance(a, _VecType) and isinstance(b, _VecType):
                return lambda a, b: impl(a, b)
            return None

    _register(_binop(_name))


_jit = numba.njit(cache=True, nogil=True, fastmath=False)


@_jit
def vsum(v):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Return the sum of the lanes in a fixed tree: ((v₀+v₁)+(v₂+v₃))+((v₄+v₅)+(v₆+v₇))."""
    h = W
    while h > 1:
        h //= 2
        t = v
        for q in range(h):
            t = vset(t, q, vget(v, 2 * q) + vget(v, 2 * q + 1))
        v = t
    return vget(v, 0)


@_jit
def vload_part(arr, off, n):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``arr[off : off + n]`` in the first n < W lanes, zeros after."""
    v = vsplat(0.0)
    for q in range(n):
        v = vset(v, q, arr[off + q])
    return v


@_jit
def vstore_part(arr, off, n, v):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``arr[off : off + n] = `` the first n < W lanes of v."""
    for q in range(n):
        arr[off + q] = vget(v, q)


def _int_ptr(context: Any, builder: Any, arrty: Any, arr: Any, idx: Any) -> Any:
    return builder.gep(context.make_array(arrty)(context, builder, arr).data, [idx])


@intrinsic
def atomic_add(typingctx: Any, arr: Any, idx: Any, v: Any) -> Any:
    """``arr[idx] += v`` as one atomic operation (int64 array; sequentially consistent)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = _int_ptr(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")

    return types.int64(arr, idx, v), codegen


@intrinsic
def atomic_load(typingctx: Any, arr: Any, idx: Any) -> Any:
    """``arr[idx]`` read atomically (int64 array; acquire), so a spin loop rereads it."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = _int_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, idx), codegen


@intrinsic
def os_yield(typingctx: Any) -> Any:
    """Give the core to another runnable thread (``sched_yield``; nothing on Windows)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        if sys.platform != "win32":
            fnty = ir.FunctionType(ir.IntType(32), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "sched_yield"), [])
        return context.get_dummy_value()

    return types.void(), codegen
