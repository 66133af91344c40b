"""Inference throughput of MiniVGG and MiniGoogLeNet, tinycnn vs PyTorch.

    python -m bench.inference --batch 256
"""
import argparse

from . import common
from .train_step import compare


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["minivgg", "minigooglenet", "both"], default="both")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each framework")
    args = parser.parse_args(argv)
    print(common.header())
    for name in (["minivgg", "minigooglenet"] if args.model == "both" else [args.model]):
        compare(name, args.batch, args.steps, args.warmup, args.device, train=False, rounds=args.rounds)


if __name__ == "__main__":
    main()
