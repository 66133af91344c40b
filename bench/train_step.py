"""Training-step throughput, tinycnn vs PyTorch, same model and input.

    python -m bench.train_step --model minivgg --batch 64
    python -m bench.train_step --model minigooglenet --batch 64 --device cuda
"""
import argparse
import os
import statistics

import numpy as np

from . import common


def forward_macs(model_name, input_shape):
    import tinycnn
    from tinycnn import models
    return tinycnn.summary(models.get(model_name, num_classes=10), input_shape).total_macs


def run_tinycnn(model_name, batch, steps, warmup, device, train):
    import tinycnn
    import tinycnn.functions as F
    import tinycnn.nn as nn
    from tinycnn import models
    tinycnn.manual_seed(0)
    tinycnn.keep_freed_memory()          # as tinycnn.train.fit does
    model = nn.fuse(models.get(model_name, num_classes=10)).to(device)   # BatchNorm + ReLU as one op, as fit
    rng = np.random.default_rng(0)
    x = tinycnn.Tensor(rng.random((batch, 3, 32, 32), dtype=np.float32)).to(device)
    labels = tinycnn.Tensor(rng.integers(0, 10, batch)).to(device)
    if train:
        model.train()
        optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            optimizer.zero_grad()
            loss = F.softmax_cross_entropy(model(x), labels.data)
            loss.backward()
            optimizer.step()
            return loss
    else:
        model.eval()

        def step():
            with tinycnn.no_grad():
                return model(x)
    seconds = common.median_time(lambda: _sync(step(), device), steps, warmup)
    return seconds, common.peak_rss_mib()


def _sync(result, device):
    if device == "cuda":
        import cupy
        cupy.cuda.Device().synchronize()
    return result


def run_torch(model_name, batch, steps, warmup, device, train):
    import torch
    from .torch_models import BUILDERS
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    model = BUILDERS[model_name]().to(device)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((batch, 3, 32, 32), dtype=np.float32)).to(device)
    labels = torch.from_numpy(rng.integers(0, 10, batch)).to(device)
    if train:
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), labels)
            loss.backward()
            optimizer.step()
            if device == "cuda":
                torch.cuda.synchronize()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                model(x)
            if device == "cuda":
                torch.cuda.synchronize()
    seconds = common.median_time(step, steps, warmup)
    return seconds, common.peak_rss_mib()


def compare(model_name, batch, steps, warmup, device, train, rounds=3):
    """Print images/s, GFLOP/s and peak RSS for both frameworks and their ratio.

    The frameworks take turns, `rounds` times, each in a fresh process: the speed of the
    shared development machine drifts by up to 2x over minutes, and alternating exposes
    both to the same drift. Each round's figure is a median over `steps` steps; the
    printed figure is the median over rounds, and the range shows the drift.
    """
    flops_per_image = 2 * forward_macs(model_name, (3, 32, 32)) * (3 if train else 1)
    runners = [("tinycnn", run_tinycnn)]
    try:
        import torch  # noqa: F401
        runners.append(("pytorch", run_torch))
    except ImportError:
        pass
    results = {name: [] for name, _ in runners}
    for _ in range(rounds):
        for name, runner in runners:
            results[name].append(common.in_subprocess(runner, model_name, batch, steps, warmup, device, train))
    kind = "train step" if train else "inference"
    print(f"{model_name} {kind}, batch {batch}, {device}, median of {steps} steps after {warmup} warm-up, "
          f"{rounds} alternating rounds")
    rows = []
    for name, measured in results.items():
        times = [seconds for seconds, _ in measured]
        seconds, rss = statistics.median(times), max(rss for _, rss in measured)
        rows.append((seconds, rss))
        print(f"  {name:8s} {batch / seconds:8.1f} img/s  {flops_per_image * batch / seconds / 1e9:6.1f} GFLOP/s"
              f"  {seconds * 1000:8.1f} ms/step (rounds {min(times) * 1000:.0f}-{max(times) * 1000:.0f})"
              f"  peak RSS {rss:7.0f} MiB")
    if len(rows) == 2:
        (ours, our_rss), (theirs, their_rss) = rows
        print(f"  ratio tinycnn/pytorch: speed {theirs / ours:.2f}x, peak RSS {our_rss / their_rss:.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["minivgg", "minigooglenet"], default="minivgg")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each framework")
    args = parser.parse_args(argv)
    print(common.header())
    compare(args.model, args.batch, args.steps, args.warmup, args.device, train=True, rounds=args.rounds)


if __name__ == "__main__":
    main()
