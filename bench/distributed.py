"""Data-parallel scaling on the CPU: 1 process x 2 threads against 2 processes x 1 thread.

    python -m bench.distributed --batch 64 --steps 10

MiniVGG training steps (3x32x32 inputs, SGD momentum 0.9) on a global batch of ``--batch``:
one process with two threads, then ``mpirun -np 2`` with one thread each and half the batch
per rank, through DistributedDataParallel. Prints images/s of both, the scaling efficiency,
the gradient bytes all-reduced per step, the time of one blocking all-reduce of those bytes
and the time backward's end still waits for the reductions (what the overlap leaves exposed).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from . import common


def worker(batch, steps, warmup):
    """Run in each process: median step time and the reduction's numbers, as JSON from rank 0."""
    import tinycnn
    import tinycnn.functions as F
    import tinycnn.nn as nn
    from tinycnn import distributed as dist, models
    from tinycnn.distributed import ddp
    dist.init()
    world = dist.world_size()
    tinycnn.manual_seed(0)
    tinycnn.keep_freed_memory()
    net = nn.fuse(models.get("minivgg", num_classes=10))
    model = dist.DistributedDataParallel(net) if world > 1 else net
    rng = np.random.default_rng(dist.rank())
    x = tinycnn.Tensor(rng.random((batch // world, 3, 32, 32), dtype=np.float32))
    labels = rng.integers(0, 10, batch // world)
    optimizer = tinycnn.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    waits = []
    finish = ddp._Step.finish

    def timed_finish(step):
        start = time.perf_counter()
        finish(step)
        waits.append(time.perf_counter() - start)

    ddp._Step.finish = timed_finish

    def step():
        optimizer.zero_grad()
        F.softmax_cross_entropy(model(x), labels).backward()
        optimizer.step()

    seconds = common.median_time(step, steps, warmup)
    result = {"world": world, "step_s": seconds, "images_per_s": batch / seconds}
    if world > 1:
        gradient = np.ones(sum(b.buffer.size for b in model.buckets), np.float32)
        dist.barrier()
        result.update(bytes_per_step=int(gradient.nbytes), buckets=len(model.buckets),
                      exposed_wait_s=float(np.median(waits[warmup:])),
                      allreduce_s=common.median_time(lambda: dist.all_reduce(gradient), 20, 3))
    if dist.rank() == 0:
        print("RESULT " + json.dumps(result), flush=True)


def launch(processes, threads, batch, steps, warmup):
    env = {**os.environ, "TINYCNN_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads), "OMPI_MCA_btl": "self,vader",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    command = [sys.executable, "-m", "bench.distributed", "--worker", "--batch", str(batch),
               "--steps", str(steps), "--warmup", str(warmup)]
    if processes > 1:
        command = ["mpirun", "--allow-run-as-root", "-np", str(processes), "--bind-to", "none"] + command
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if "RESULT " in line)     # mpirun may prefix escapes
    return json.loads(line[line.index("RESULT ") + 7:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.batch, args.steps, args.warmup)
    if shutil.which("mpirun") is None:
        sys.exit("bench.distributed needs Open MPI's mpirun and mpi4py (pip install -e '.[distributed]')")
    print(common.header())
    one = launch(1, 2, args.batch, args.steps, args.warmup)
    two = launch(2, 1, args.batch, args.steps, args.warmup)
    print(f"MiniVGG training step, global batch {args.batch}, median of {args.steps}")
    print(f"  1 process  x 2 threads: {one['step_s'] * 1e3:7.1f} ms/step {one['images_per_s']:7.1f} img/s")
    print(f"  2 processes x 1 thread: {two['step_s'] * 1e3:7.1f} ms/step {two['images_per_s']:7.1f} img/s "
          f"({two['images_per_s'] / one['images_per_s']:.2f}x)")
    print(f"  gradient all-reduced per step: {two['bytes_per_step'] / 2**20:.2f} MiB in {two['buckets']} buckets; "
          f"one blocking all-reduce of it: {two['allreduce_s'] * 1e3:.2f} ms; "
          f"left waiting after backward: {two['exposed_wait_s'] * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
