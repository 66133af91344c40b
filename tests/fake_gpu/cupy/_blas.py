"""The stand-in's matrix product: float16 operands multiplied in float32 and rounded once.

That is what cuBLAS's gemmEx computes for CuPy's 2-D float16 product (CUBLAS_COMPUTE_32F) and
what CuPy 14's batched float16 matmul does (it upcasts to float32, then casts the result back).
NumPy's own float16 matmul gives the same values without BLAS, 100 times slower.
"""
import numpy


def matmul(a, b, out=None, **kwargs):
    """numpy.matmul of the NumPy arrays behind device arrays, float16 through float32."""
    if getattr(a, "dtype", None) == numpy.float16 and getattr(b, "dtype", None) == numpy.float16:
        result = numpy.matmul(a.astype(numpy.float32), b.astype(numpy.float32), **kwargs).astype(numpy.float16)
        if out is None:
            return result
        out[...] = result
        return out
    return numpy.matmul(a, b, out=out, **kwargs)
