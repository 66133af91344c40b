"""How 1x1 convolutions manage model complexity (the lecture notes' Keras example, in tinycnn;
docs/one_by_one.md derives it).

A 5x5 convolution with 32 filters on a 28x28x192 input holds 153,632 parameters; putting
a 1x1 "bottleneck" convolution with 16 filters in front of it cuts that to
3,088 + 12,832 = 15,920, and the multiply-adds for a 28x28x32 ("same" padded) output from
120 M to 2.4 M + 10.0 M. (The lecture notes' Keras summary uses "valid" padding, 24x24
outputs: the parameters are the same.) Every number below is measured on real tinycnn layers
by tinycnn.summary, nothing is hard-coded.

    python examples/one_by_one_convolution.py
    python examples/one_by_one_convolution.py --bottleneck 32 --filters 64
"""
import argparse
from collections import OrderedDict

import tinycnn.nn as nn
from tinycnn.summary import summary


def describe(title, model, input_shape):
    result = summary(model, input_shape)
    print(f"{title}\n{result}\n")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description="Parameters and multiply-adds with and without a 1x1 bottleneck.")
    parser.add_argument("--channels", type=int, default=192, help="input channels (default 192)")
    parser.add_argument("--size", type=int, default=28, help="input height and width (default 28)")
    parser.add_argument("--filters", type=int, default=32, help="filters of the 5x5 convolution (default 32)")
    parser.add_argument("--bottleneck", type=int, default=16, help="filters of the 1x1 convolution (default 16)")
    parser.add_argument("--padding", choices=("same", "valid"), default="same",
                        help="padding of the 5x5 convolution (default same: 28x28 outputs)")
    args = parser.parse_args(argv)
    input_shape = (args.channels, args.size, args.size)
    padding = 2 if args.padding == "same" else 0

    direct = nn.Sequential(OrderedDict([
        ("conv5x5", nn.Conv2d(args.channels, args.filters, 5, padding=padding)), ("relu", nn.ReLU())]))
    reduced = nn.Sequential(OrderedDict([
        ("conv1x1", nn.Conv2d(args.channels, args.bottleneck, 1)), ("relu1", nn.ReLU()),
        ("conv5x5", nn.Conv2d(args.bottleneck, args.filters, 5, padding=padding)), ("relu2", nn.ReLU())]))
    plain = describe("5x5 convolution directly:", direct, input_shape)
    bottleneck = describe(f"1x1 convolution ({args.bottleneck} filters) first:", reduced, input_shape)

    conv_rows = [row for row in bottleneck.rows if row.kind == "Conv2d"]
    print(f"parameters:   {plain.total_params:,} vs "
          f"{' + '.join(f'{row.params:,}' for row in conv_rows)} = {bottleneck.total_params:,} "
          f"({plain.total_params / bottleneck.total_params:.1f}x fewer)")
    print(f"multiply-adds: {plain.total_macs / 1e6:.1f} M vs "
          f"{' + '.join(f'{row.macs / 1e6:.1f} M' for row in conv_rows)} = {bottleneck.total_macs / 1e6:.1f} M")


if __name__ == "__main__":
    main()
