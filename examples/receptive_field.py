"""Receptive field of every convolution and pooling layer of a model.

The receptive field of a unit is the input region that can affect it (size, in pixels);
the jump is the distance in input pixels between neighbouring units of the layer. Both are
propagated through the real forward pass by tinycnn.summary, so branching models work too
(the longest path counts). Three stacked 3x3 convolutions see 7x7, like one 7x7 layer:
watch VGG-16's block1 and block2.

    python examples/receptive_field.py                  # VGG-16 (212 pixels at block5_pool)
    python examples/receptive_field.py --model alexnet  # 195 pixels at pool5
    python examples/receptive_field.py --model googlenet --all
"""
import argparse

import tinycnn.models as models
from tinycnn.summary import summary

SPATIAL_LAYERS = ("Conv2d", "MaxPool2d", "AvgPool2d", "KerasSameMaxPool2d")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print the receptive field (size/jump) of each layer of a model.")
    parser.add_argument("--model", default="vgg16", help=f"a registered model (default vgg16); "
                                                         f"one of {', '.join(models.available())}")
    parser.add_argument("--input-shape", type=int, nargs=3, metavar=("C", "H", "W"),
                        help="input size (default: the model's own)")
    parser.add_argument("--all", action="store_true", help="list every layer, not only convolutions and pools")
    args = parser.parse_args(argv)

    model = models.get(args.model)
    result = summary(model, args.input_shape)
    height, width = result.input_shape[1:]
    print(f"{args.model}, input {height}x{width}")
    print(f"{'layer':<48} {'type':<12} {'output':>18} {'RF':>9} {'jump':>6}")
    last = None
    for row in result.rows:
        if row.receptive_field is None or not (args.all or row.kind in SPATIAL_LAYERS):
            continue
        (rf_h, rf_w), (jump_h, jump_w) = row.receptive_field, row.jump
        rf = f"{rf_h}" if rf_h == rf_w else f"{rf_h}x{rf_w}"
        jump = f"{jump_h}" if jump_h == jump_w else f"{jump_h}x{jump_w}"
        shape = "x".join(str(n) for n in row.output_shape)
        print(f"{row.name:<48} {row.kind:<12} {shape:>18} {rf:>9} {jump:>6}")
        last = row
    if last is not None:
        rf_h, rf_w = last.receptive_field
        print(f"\nThe last spatial layer sees {rf_h}x{rf_w} input pixels", end="")
        print(" (more than the image: the rest is zero padding)." if max(rf_h, rf_w) > max(height, width) else ".")


if __name__ == "__main__":
    main()
