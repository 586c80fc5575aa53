"""ImageNet ResNets in torchvision's layout (He et al. 2016): resnet18, resnet34, resnet50.

A 7×7 stride-2 stem and a 3×3 stride-2 max pool, then four stages of strides 1/2/2/2;
ResNet-50 is v1.5 (the stride sits on the 3×3 conv of its bottlenecks). The classifier
pools layer4's output (after its ReLU).
"""
from functools import partial
from typing import Any

import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, conv
from ijckd_jax.models.resnet_blocks import BasicBlock, Bottleneck


class ImageNetResNet(ImageClassifier):
    """torchvision's ResNet: stem, max pool, layer1..layer4."""
    block: Any = BasicBlock
    stage_sizes: tuple = (2, 2, 2, 2)

    def backbone(self, images, train):
        x = conv(64, 7, 2, 3, dtype=self.dtype, name='conv1')(images)
        x = nn.relu(BatchNorm(dtype=self.dtype, name='bn1')(x, train))
        # MaxPool2d(3, 2, 1): padded with -inf first, then a plain window (which jax2onnx also
        # exports exactly; it misreads an explicit padding).
        x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
        x = nn.max_pool(x, window_shape=(3, 3), strides=(2, 2))
        for stage, (blocks, planes) in enumerate(zip(self.stage_sizes, (64, 128, 256, 512)), start=1):
            for index in range(blocks):
                stride = 2 if stage > 1 and index == 0 else 1
                x = self.block(planes, stride, self.dtype, name=f'layer{stage}.{index}')(x, train)
        return x


MODELS = {
    'resnet18': partial(ImageNetResNet, block=BasicBlock, stage_sizes=(2, 2, 2, 2)),
    'resnet34': partial(ImageNetResNet, block=BasicBlock, stage_sizes=(3, 4, 6, 3)),
    'resnet50': partial(ImageNetResNet, block=Bottleneck, stage_sizes=(3, 4, 6, 3)),
}
