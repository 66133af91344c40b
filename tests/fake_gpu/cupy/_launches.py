"""What the stand-in counts of a step's GPU work: kernel launches and CuPy calls.

``counts["raw_kernels"]`` counts RawKernel launches (tinycnn's CUDA C), ``counts["array_ops"]``
the CuPy calls that launch a kernel of CuPy's own on a GPU (ufuncs, reductions, copies, matmul,
fills, item assignment); views (reshape, transpose, slicing) and host-side checks
(may_share_memory) launch nothing and are not counted.
``counts["graph_launches"]`` counts ``cupy.cuda.Graph.launch()``. Read them around a step:

    >>> from cupy import _launches            # with PYTHONPATH=tests/fake_gpu
    >>> with _launches.counting() as counted:
    ...     pass                               # one training step
    >>> counted["raw_kernels"] + counted["array_ops"]
    0
"""
import contextlib

import numpy

counts = {"raw_kernels": 0, "array_ops": 0, "graph_launches": 0}

# ndarray methods and cupy functions that launch no kernel on a GPU: views, and host-side checks
NO_KERNEL = frozenset({"reshape", "view", "transpose", "swapaxes", "squeeze", "expand_dims", "moveaxis",
                       "broadcast_to", "split", "array_split", "shape", "ndim", "may_share_memory"})


def add(kind, number=1):
    if not _replaying:
        counts[kind] += number


@contextlib.contextmanager
def counting():
    """A dict that holds, after the block, how many of each kind the block made."""
    before = dict(counts)
    counted = {}
    try:
        yield counted
    finally:
        counted.update({kind: counts[kind] - before[kind] for kind in counts})


# ----- stream capture (cupy.cuda.Stream.begin_capture / end_capture -> cupy.cuda.Graph) -------
#
# On a GPU, work issued while a stream captures does not run: it becomes the graph, which runs
# at each launch. The stand-in does the same with the device work it knows: during a capture an
# operation that writes memory that exists (in place, out=, item assignment, a RawKernel, a
# GEMM into out) is only recorded; one that makes a new array runs (the host code needs an array
# of the right shape; its values are not to be trusted, as a GPU's are not yet computed) and is
# recorded to refill that same array at each launch. A launch replays the records in order.

_capture = None         # the records of the capture under way, or None
_replaying = False


def capturing():
    return _capture is not None


def begin_capture():
    global _capture
    if _capture is not None:
        raise RuntimeError("stand-in: a stream is capturing already (captures do not nest)")
    _capture = []


def end_capture():
    global _capture
    if _capture is None:
        raise RuntimeError("stand-in: end_capture() without begin_capture()")
    records, _capture = _capture, None
    return records


def device_op(compute, writes):
    """Run compute() (a NumPy computation behind one CuPy call) now, or record it during a capture
    (see above). Returns compute()'s value, or None for a write recorded and not run."""
    if _capture is None:
        return compute()
    if writes:
        _capture.append(compute)
        return None
    value = compute()
    if isinstance(value, numpy.generic):          # a full reduction: the 0-d array that wrap() makes
        value = numpy.asarray(value)
    if isinstance(value, numpy.ndarray):
        def refill():
            fresh = compute()
            if not numpy.may_share_memory(fresh, value):      # a view of its input needs nothing
                value[...] = fresh
        _capture.append(refill)
    return value


def replay(records):
    """One graph launch: the recorded work in order, counted as one launch and nothing else."""
    global _replaying
    counts["graph_launches"] += 1
    _replaying = True
    try:
        with numpy.errstate(all="ignore"):
            for record in records:
                record()
    finally:
        _replaying = False
