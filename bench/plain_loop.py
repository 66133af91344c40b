"""The training loop a PyTorch user writes, tinycnn against PyTorch in one process (issue #22).

    python -m bench.plain_loop --model minivgg
    OPENBLAS_CORETYPE=Haswell python -m bench.plain_loop --model minigooglenet

Each step is forward, softmax cross entropy, zero_grad, backward, step and float(loss) (PyTorch's
loss.item()), and
nothing else: no nn.fuse, no keep_freed_memory, no thread settings. The two frameworks take
turns for --rounds rounds (the shared machine's speed drifts; taking turns exposes both to
it), each round timing --steps steps after a warm-up; the figure is the median over rounds.
Inference runs the models in eval mode under no_grad at --inference-batch. Peak RSS is each
framework's own: the same loop again, alone in a fresh process.
"""
import argparse
import os
import statistics
import time

import numpy as np

from . import common
from .train_step import forward_macs


def tinycnn_steps(model_name, batch, train):
    import tinycnn
    import tinycnn.functions as F
    from tinycnn import models
    tinycnn.manual_seed(0)
    model = models.get(model_name, num_classes=10)
    rng = np.random.default_rng(0)
    x = tinycnn.Tensor(rng.random((batch, 3, 32, 32), dtype=np.float32))
    labels = rng.integers(0, 10, batch)
    if not train:
        model.eval()

        def infer():
            with tinycnn.no_grad():
                return model(x)
        return infer
    optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.softmax_cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss)
    return step


def torch_steps(model_name, batch, train):
    import torch
    from .torch_models import BUILDERS
    torch.manual_seed(0)
    model = BUILDERS[model_name]()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((batch, 3, 32, 32), dtype=np.float32))
    labels = torch.from_numpy(rng.integers(0, 10, batch))
    if not train:
        model.eval()

        def infer():
            with torch.no_grad():
                return model(x)
        return infer
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


BUILD = {"tinycnn": tinycnn_steps, "pytorch": torch_steps}


def peak_rss(framework, model_name, batch, train, steps):
    """Peak RSS (MiB) of `steps` steps of one framework alone in this (fresh) process."""
    step = BUILD[framework](model_name, batch, train)
    for _ in range(steps):
        step()
    return common.peak_rss_mib()


def compare(model_name, batch, train, rounds, steps, warmup):
    flops = 2 * forward_macs(model_name, (3, 32, 32)) * (3 if train else 1) * batch
    steps_of = {name: build(model_name, batch, train) for name, build in BUILD.items()}
    for step in steps_of.values():
        for _ in range(warmup):
            step()
    seconds = {name: [] for name in BUILD}
    for _ in range(rounds):
        for name, step in steps_of.items():
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            seconds[name].append(statistics.median(times))
    rss = {name: common.in_subprocess(peak_rss, name, model_name, batch, train, warmup + steps) for name in BUILD}
    kind = "train step" if train else "inference"
    print(f"{model_name} {kind}, batch {batch}: median of {rounds} alternating rounds of {steps} steps")
    for name, times in seconds.items():
        median = statistics.median(times)
        print(f"  {name:8s} {batch / median:7.1f} img/s {flops / median / 1e9:6.1f} GFLOP/s {median * 1000:7.1f} ms "
              f"(rounds {min(times) * 1000:.0f}-{max(times) * 1000:.0f})  peak RSS {rss[name]:6.0f} MiB")
    ours, theirs = (statistics.median(seconds[name]) for name in BUILD)
    print(f"  tinycnn / pytorch: speed {theirs / ours:.2f}x, peak RSS {rss['tinycnn'] / rss['pytorch']:.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["minivgg", "minigooglenet"], default="minivgg")
    parser.add_argument("--batch", type=int, default=64, help="training batch")
    parser.add_argument("--inference-batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--skip-inference", action="store_true")
    args = parser.parse_args(argv)
    blas = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    print(f"{common.header()}; OPENBLAS_CORETYPE={blas}")
    compare(args.model, args.batch, True, args.rounds, args.steps, args.warmup)
    if not args.skip_inference:
        compare(args.model, args.inference_batch, False, args.rounds, args.steps, args.warmup)


if __name__ == "__main__":
    main()
