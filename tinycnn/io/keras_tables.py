"""Which Keras layer goes where in tinycnn: one table per model, for ``tinycnn.io.load_keras``.

    >>> import tinycnn.models as models
    >>> table = keras_table(models.get("minivgg"))
    >>> table.rows[0]
    Row(keras='block1_conv1', tinycnn='features.block1_conv1', kind='conv', fold_into=None)
    >>> table.flat_shape, table.eps
    ((64, 8, 8), 0.001)

Kinds: ``conv`` (Conv2D: kernel, bias), ``bn`` (BatchNormalization: gamma, beta, moving_mean,
moving_variance), ``dense`` (Dense: kernel, bias) and ``flat_dense`` (the Dense fed by
Flatten, whose rows are re-ordered from channels-last). ``fold_into`` names the BatchNorm
that takes a conv's bias where tinycnn's conv has none.
"""
from typing import NamedTuple, Optional


class Row(NamedTuple):
    keras: str                       # the Keras layer's name
    tinycnn: str                     # the tinycnn module's name in the model's state_dict
    kind: str                        # conv, bn, dense or flat_dense
    fold_into: Optional[str] = None  # the tinycnn BatchNorm that takes this conv's bias


class Table(NamedTuple):
    name: str
    rows: list
    flat_shape: Optional[tuple]      # (C, H, W) of the map Flatten sees, for the flat_dense row
    eps: float                       # the Keras model's BatchNormalization epsilon


# MiniVGG as the lecture notes build it in Keras, its layers named as Keras applications name VGG's
# (Keras' default BatchNormalization epsilon, 1e-3)
MINIVGG = [
    Row("block1_conv1", "features.block1_conv1", "conv"), Row("block1_bn1", "features.block1_bn1", "bn"),
    Row("block1_conv2", "features.block1_conv2", "conv"), Row("block1_bn2", "features.block1_bn2", "bn"),
    Row("block2_conv1", "features.block2_conv1", "conv"), Row("block2_bn1", "features.block2_bn1", "bn"),
    Row("block2_conv2", "features.block2_conv2", "conv"), Row("block2_bn2", "features.block2_bn2", "bn"),
    Row("fc1", "classifier.fc1", "flat_dense"),
    Row("fc1_bn", "classifier.fc1_bn", "bn"),
    Row("predictions", "classifier.predictions", "dense"),
]

# keras.applications.VGG16
VGG16 = [
    Row("block1_conv1", "features.block1_conv1", "conv"), Row("block1_conv2", "features.block1_conv2", "conv"),
    Row("block2_conv1", "features.block2_conv1", "conv"), Row("block2_conv2", "features.block2_conv2", "conv"),
    Row("block3_conv1", "features.block3_conv1", "conv"), Row("block3_conv2", "features.block3_conv2", "conv"),
    Row("block3_conv3", "features.block3_conv3", "conv"),
    Row("block4_conv1", "features.block4_conv1", "conv"), Row("block4_conv2", "features.block4_conv2", "conv"),
    Row("block4_conv3", "features.block4_conv3", "conv"),
    Row("block5_conv1", "features.block5_conv1", "conv"), Row("block5_conv2", "features.block5_conv2", "conv"),
    Row("block5_conv3", "features.block5_conv3", "conv"),
    Row("fc1", "classifier.fc1", "flat_dense"),
    Row("fc2", "classifier.fc2", "dense"),
    Row("predictions", "classifier.predictions", "dense"),
]


def _resnet50_rows():
    """keras.applications.ResNet50 (stride on the first 1x1 conv of a block, as tinycnn's default):

        Keras                               tinycnn
        conv1_conv, conv1_bn                conv1, bn1
        conv{s}_block{b}_0_conv, _0_bn      layer{s-1}.{b-1}.downsample.0, .1   (first block of a stage)
        conv{s}_block{b}_{k}_conv, _{k}_bn  layer{s-1}.{b-1}.conv{k}, .bn{k}     (k = 1, 2, 3)
        predictions                         fc

    Every conv has a bias, folded into the BatchNorm after it.
    """
    rows = [Row("conv1_conv", "conv1", "conv", "bn1"), Row("conv1_bn", "bn1", "bn")]
    for stage, blocks in zip((2, 3, 4, 5), (3, 4, 6, 3)):
        for block in range(1, blocks + 1):
            keras, tinycnn = f"conv{stage}_block{block}", f"layer{stage - 1}.{block - 1}"
            if block == 1:
                rows += [Row(f"{keras}_0_conv", f"{tinycnn}.downsample.0", "conv", f"{tinycnn}.downsample.1"),
                         Row(f"{keras}_0_bn", f"{tinycnn}.downsample.1", "bn")]
            for k in (1, 2, 3):
                rows += [Row(f"{keras}_{k}_conv", f"{tinycnn}.conv{k}", "conv", f"{tinycnn}.bn{k}"),
                         Row(f"{keras}_{k}_bn", f"{tinycnn}.bn{k}", "bn")]
    return rows + [Row("predictions", "fc", "dense")]


RESNET50 = _resnet50_rows()


def keras_table(model):
    """The Table of ``model``: tinycnn's MiniVGG, VGG-16 (config D, no BatchNorm) or ResNet-50."""
    from ..models.minivgg import MiniVGG
    from ..models.resnet import Bottleneck, ResNet
    from ..models.vgg import VGG
    from ..nn import BatchNorm2d

    if isinstance(model, MiniVGG):
        _, height, width = model.input_shape
        return Table("minivgg", MINIVGG, (64, height // 4, width // 4), 1e-3)
    if isinstance(model, VGG):
        batch_norm = any(isinstance(module, BatchNorm2d) for module in model.modules())
        if model.config != "D" or batch_norm:
            raise ValueError(f"load_keras: Keras has VGG16 (configuration D without BatchNorm); this VGG is "
                             f"configuration {model.config}{' with BatchNorm' if batch_norm else ''}")
        pool = getattr(model.classifier, "avgpool", None)
        _, height, width = model.input_shape
        grid = tuple(pool.output_size) if pool is not None else (height // 32, width // 32)
        return Table("vgg16", VGG16, (512, *grid), 1e-3)
    if isinstance(model, ResNet) and isinstance(model.layer1[0], Bottleneck) \
            and [len(stage) for stage in (model.layer1, model.layer2, model.layer3, model.layer4)] == [3, 4, 6, 3]:
        if model.layer2[0].conv1.stride != 2:
            raise ValueError("load_keras: Keras' ResNet50 has the stride on the first 1x1 conv of a block; "
                             "build tinycnn's resnet50 with stride_on='1x1' (the default)")
        return Table("resnet50", RESNET50, None, 1.001e-5)
    raise ValueError(f"load_keras: no Keras table for a {type(model).__name__}; "
                     f"tables exist for MiniVGG, VGG-16 and ResNet-50")
