"""Count the GPU work of one training step on the CPU stand-in of CuPy (tests/fake_gpu).

    PYTHONPATH=tests/fake_gpu python -m bench.gpu_launches --model minigooglenet --batch 128

prints the RawKernel launches (tinycnn's CUDA C) and the CuPy calls that launch a kernel of
CuPy's own, for a step of SGD with momentum on a fused model (``nn.fuse``, as ``fit`` runs it),
after one warm-up step (the first step creates the optimizer's buffers).
"""
import argparse

import numpy as np


def count_step(model_name, batch, optimizer_name="sgd"):
    """{"raw_kernels": ..., "array_ops": ..., "graph_launches": ...} of one training step."""
    import cupy
    from cupy import _launches

    import tinycnn
    import tinycnn.functions as F
    from tinycnn import models, nn
    if not getattr(cupy, "IS_STAND_IN", False):
        raise SystemExit("gpu_launches counts on the stand-in: run it with PYTHONPATH=tests/fake_gpu")
    tinycnn.manual_seed(0)
    model = nn.fuse(models.get(model_name, num_classes=10)).to("cuda")
    optimizer = (tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
                 if optimizer_name == "sgd" else tinycnn.optim.AdamW(model.parameters(), lr=1e-3))
    rng = np.random.default_rng(0)
    images = tinycnn.Tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)).to("cuda")
    labels = tinycnn.Tensor(rng.integers(0, 10, batch)).to("cuda")

    def step():
        optimizer.zero_grad()
        loss = F.softmax_cross_entropy(model(images), labels.data)
        loss.backward()
        optimizer.step()

    step()
    with _launches.counting() as counted:
        step()
    return counted


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minigooglenet")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    args = parser.parse_args(argv)
    counted = count_step(args.model, args.batch, args.optimizer)
    total = counted["raw_kernels"] + counted["array_ops"]
    print(f"{args.model} batch {args.batch} ({args.optimizer}): {counted['raw_kernels']} kernel launches + "
          f"{counted['array_ops']} CuPy calls = {total} per step")


if __name__ == "__main__":
    main()
