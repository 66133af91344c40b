"""Where a training step's time goes: seconds per op type, forward and backward.

    python -m bench.profile --model minigooglenet --batch 64
    python -m bench.profile --model minigooglenet --batch 256 --eval     # inference: forward only
    python -m bench.profile --model minivgg --plain --convolutions       # also inside the convolutions

``--convolutions`` also times, inside the convolution Functions, their ``np.matmul`` calls (the
GEMMs; im2col's weight gradient, a ``@`` per image, stays outside) and each kernel they call; a
call on a worker thread (a chunk of the batch, run beside the other workers' chunks) counts its
time over the number of workers.
"""
import argparse
import collections
import time

import numpy as np


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def profile(model_name, batch, steps, plain=False, inference=False, convolutions=False):
    import tinycnn
    import tinycnn.functions as F
    from tinycnn import models
    from tinycnn.tensor import Function
    totals = collections.defaultdict(float)

    def timed(cls, phase, method):
        def wrapper(self, *args):
            start = time.perf_counter()
            result = method(self, *args)
            totals[(cls.__name__, phase)] += time.perf_counter() - start
            return result
        return wrapper

    for cls in set(_subclasses(Function)):
        for phase in ("forward", "backward"):
            if phase in cls.__dict__:
                setattr(cls, phase, timed(cls, phase, cls.__dict__[phase]))
    inside = _time_inside_convolutions() if convolutions else {}
    model = models.get(model_name, num_classes=10)
    if not plain:           # as tinycnn.train.fit runs it; --plain: as a user's own loop
        tinycnn.keep_freed_memory()
        model = tinycnn.nn.fuse(model)      # BatchNorm + ReLU as one op
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if inference:           # as bench.plain_loop's inference: eval mode, no graph
        model.eval()
    rng = np.random.default_rng(0)
    x = tinycnn.Tensor(rng.random((batch, 3, 32, 32), dtype=np.float32))
    labels = rng.integers(0, 10, batch)
    wall = 0.0
    for step in range(steps + 1):
        if step == 1:   # the first step compiles and warms up
            totals.clear()
            inside.clear()
            wall = 0.0
        start = time.perf_counter()
        if inference:
            with tinycnn.no_grad():
                model(x)
        else:
            optimizer.zero_grad()
            F.softmax_cross_entropy(model(x), labels).backward()
            optimizer.step()
        wall += time.perf_counter() - start
    what = "inference pass" if inference else "training step"
    print(f"{model_name}, batch {batch}: {wall / steps * 1000:.1f} ms per {what} (mean of {steps})")
    print(f"{'op':24s} {'forward ms':>11s} {'backward ms':>12s} {'share':>6s}")
    names = sorted({name for name, _ in totals}, key=lambda n: -(totals[(n, 'forward')] + totals[(n, 'backward')]))
    for name in names:
        fwd, bwd = totals[(name, "forward")] / steps, totals[(name, "backward")] / steps
        print(f"{name:24s} {fwd * 1000:11.2f} {bwd * 1000:12.2f} {(fwd + bwd) / (wall / steps):6.1%}")
    covered = sum(totals.values()) / steps
    print(f"{'(outside ops: optimizer, graph, Python)':24s} {(wall / steps - covered) * 1000:11.2f}")
    if inside:
        print("inside the convolutions, ms per step (a call on a worker thread counts over the workers):")
        for name, seconds in sorted(inside.items(), key=lambda item: -item[1]):
            print(f"  {name:40s} {seconds / steps * 1000:8.2f}")


def _time_inside_convolutions():
    """Wrap the GEMMs and kernels the convolution Functions call; returns their running totals."""
    import threading
    from tinycnn import kernels, parallel
    from tinycnn.functions import conv_im2col, conv_im2row, conv_winograd
    totals, lock = collections.defaultdict(float), threading.Lock()
    workers = parallel.workers()        # asked here: inside a worker thread it says 1

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            # a call on a worker thread ran beside the others' calls: its share of the wall clock
            share = 1.0 if threading.current_thread() is threading.main_thread() else 1.0 / workers
            with lock:
                totals[name] += (time.perf_counter() - start) * share
            return result
        return wrapper

    class NumPyWithTimedMatmul:
        """The module's `np`, with matmul timed under the algorithm's name."""
        def __init__(self, algorithm):
            self.matmul = timed(f"{algorithm} GEMMs (np.matmul)", np.matmul)

        def __getattr__(self, name):
            return getattr(np, name)

    for module, algorithm in ((conv_im2col, "im2col"), (conv_im2row, "im2row"), (conv_winograd, "Winograd")):
        module.np = NumPyWithTimedMatmul(algorithm)
    for name in ("im2col", "col2im", "im2row", "row2im", "swap_last_axes", "max_abs", "winograd_input_transform",
                 "winograd_input_transform_backward", "winograd_output_transform",
                 "winograd_output_transform_backward", "winograd_weight_transform",
                 "winograd_weight_transform_backward"):
        setattr(kernels, name, timed(name, getattr(kernels, name)))
    return totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["minivgg", "minigooglenet"], default="minigooglenet")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--plain", action="store_true", help="no nn.fuse, no keep_freed_memory: a user's own loop")
    parser.add_argument("--eval", action="store_true", help="time inference (eval mode, no_grad) instead of training")
    parser.add_argument("--convolutions", action="store_true", help="also time the GEMMs and kernels inside them")
    args = parser.parse_args(argv)
    profile(args.model, args.batch, args.steps, args.plain, args.eval, args.convolutions)


if __name__ == "__main__":
    main()
