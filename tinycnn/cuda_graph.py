"""Whole-step CUDA graphs: a training step (forward, backward, optimizer step) of one batch
shape is captured once into a graph, then each batch is one graph launch instead of hundreds of
kernel launches queued by Python.

    step = GraphedStep(run_step, optimizer)      # run_step(images, labels) -> (loss, output) arrays
    loss, output = step(images, labels)          # device arrays; fit(..., cuda_graph=True) does this

The first batch runs eagerly (it compiles the kernels and creates the optimizer's state); the
second of the same shape is captured and launched; later ones are copied into the graph's
static input buffers and launched. A batch of another shape (the last, partial one of an
epoch) runs eagerly.

What must hold for a capture to replay the step faithfully:
* no host synchronisation inside the step: nothing may read a device value on the host
  (tinycnn's GPU path has none; tests/test_cuda_backend.py checks it);
* static shapes and static inputs: a graph reads its input buffers and writes its outputs at
  the addresses it was captured with; inputs are copied into those buffers before each launch;
* no allocation outside the pool: the capture allocates from a memory pool of the graph's own,
  kept with it, so the memory the graph writes is never handed to anything else;
* nothing computed on the host per step: scalars passed to kernels are frozen into the graph.
  A changed learning rate or other hyper-parameter is noticed and the step captured again;
  Adam's bias correction changes every step, so optimizers whose step depends on the step
  count (``graph_safe = False``) are refused.
"""
from .kernels import array_module, is_cupy_array


class GraphedStep:
    """Runs ``run_step(images, labels) -> (loss, output)`` as a captured CUDA graph (see the
    module docstring); ``optimizer`` is the one ``run_step`` steps."""

    def __init__(self, run_step, optimizer):
        if not getattr(optimizer, "graph_safe", False):
            raise ValueError(f"cuda_graph: {type(optimizer).__name__}'s step depends on the step count, which a "
                             "captured graph would freeze; use SGD (or cuda_graph=False)")
        self.run_step, self.optimizer = run_step, optimizer
        self.shape = None           # (images shape, dtype, labels shape, dtype) of the graphed batches
        self.graph = None           # (hyper-parameters, graph, static images, labels, loss, output, pool)
        self.launches = 0

    def __call__(self, images, labels):
        if not (is_cupy_array(images) and is_cupy_array(labels)):
            raise TypeError("cuda_graph: the batch must be on the GPU (CuPy arrays), got "
                            f"{type(images).__name__} and {type(labels).__name__}")
        shape = (images.shape, images.dtype, labels.shape, labels.dtype)
        if self.shape is None:
            self.shape = shape
            return self._eager(images, labels)
        if shape != self.shape:
            return self._eager(images, labels)        # the last, partial batch of an epoch
        hyper = self._hyper_parameters()
        if self.graph is None or self.graph[0] != hyper:
            self.graph = (hyper, *self._capture(images, labels))
        _, graph, static_images, static_labels, loss, output, _ = self.graph
        static_images[...] = images
        static_labels[...] = labels
        graph.launch()
        self.launches += 1
        return loss, output

    def _hyper_parameters(self):
        return tuple(tuple(sorted((k, v) for k, v in group.items() if k != "params"))
                     for group in self.optimizer.param_groups)

    def _eager(self, images, labels):
        return self.run_step(images, labels)

    def _capture(self, images, labels):
        """Capture the step on a side stream into a graph with a memory pool of its own (the work
        does not run while it is captured)."""
        cupy = array_module(images)
        pool, stream, main = cupy.cuda.MemoryPool(), cupy.cuda.Stream(non_blocking=True), cupy.cuda.get_current_stream()
        stream.wait_event(main.record())            # the capture follows what is queued, without a host wait
        with cupy.cuda.using_allocator(pool.malloc), stream:
            static_images, static_labels = images.copy(), labels.copy()
            stream.begin_capture()
            try:
                loss, output = self.run_step(static_images, static_labels)
            finally:
                graph = stream.end_capture()
        main.wait_event(stream.record())
        return graph, static_images, static_labels, loss, output, pool
