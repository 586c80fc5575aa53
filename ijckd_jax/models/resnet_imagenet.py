"""ImageNet ResNets in torchvision's layout (He et al. 2016): resnet18, resnet34, resnet50.

A 7×7 stride-2 stem and a 3×3 stride-2 max pool, then four stages of strides 1/2/2/2;
ResNet-50 is v1.5 (the stride sits on the 3×3 conv of its bottlenecks). The classifier
pools layer4's output (after its ReLU). The stages are mdistiller's feats["feats"]
(mdistiller/models/imagenet/resnet.py, forward, lines 164-189): the stem's output after its
ReLU, before the max pool, then each stage's output after its ReLU (mdistiller applies it
at the next block's input, torchvision at the block's end: the same maps). The pre-activation
stages are its feats["preact_feats"] (same lines): the stem's output, then each stage's last
block's sum before its ReLU. (mdistiller means the stem before its ReLU, `stem = x` before
`x = self.relu(x)`, but that ReLU is in place, so the stem it returns is after the ReLU: so
here too. OFD does not read it.) The preact norms are mdistiller's
get_bn_before_relu (lines 145-159): the last block's bn2 (BasicBlock) or bn3 (Bottleneck) of
layer2, layer3 and layer4 only (layer1's is commented out there), three pairs for five maps.
"""
from functools import partial
from typing import Any

import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, conv, norm_affine
from ijckd_jax.models.resnet_blocks import BasicBlock, Bottleneck


class ImageNetResNet(ImageClassifier):
    """torchvision's ResNet: stem, max pool, layer1..layer4."""
    block: Any = BasicBlock
    stage_sizes: tuple = (2, 2, 2, 2)

    def backbone(self, images, train):
        x = conv(64, 7, 2, 3, dtype=self.dtype, name='conv1')(images)
        x = nn.relu(BatchNorm(dtype=self.dtype, name='bn1')(x, train))
        stages, preact_stages, norms = [x], [x], []
        # MaxPool2d(3, 2, 1): padded with -inf first, then a plain window (which jax2onnx also
        # exports exactly; it misreads an explicit padding).
        x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
        x = nn.max_pool(x, window_shape=(3, 3), strides=(2, 2))
        for stage, (blocks, planes) in enumerate(zip(self.stage_sizes, (64, 128, 256, 512)), start=1):
            for index in range(blocks):
                stride = 2 if stage > 1 and index == 0 else 1
                x, preact = self.block(planes, stride, self.dtype, name=f'layer{stage}.{index}')(x, train)
            stages.append(x)
            preact_stages.append(preact)
            if stage > 1:
                norms.append(norm_affine(self, f'layer{stage}.{blocks - 1}', self.block.last_norm))
        return x, tuple(stages), tuple(preact_stages), tuple(norms)


MODELS = {
    'resnet18': partial(ImageNetResNet, block=BasicBlock, stage_sizes=(2, 2, 2, 2)),
    'resnet34': partial(ImageNetResNet, block=BasicBlock, stage_sizes=(3, 4, 6, 3)),
    'resnet50': partial(ImageNetResNet, block=Bottleneck, stage_sizes=(3, 4, 6, 3)),
}
