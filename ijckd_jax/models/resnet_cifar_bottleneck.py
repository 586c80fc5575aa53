"""RepDistiller's CIFAR ResNet50 (models/resnetv2.py): bottleneck blocks after a 3×3 stem.

Stages of 3/4/6/3 Bottlenecks with 64/128/256/512 planes (×4 out) and strides 1/2/2/2;
the classifier, 'linear', pools the last stage's output (after its ReLU). The stages are
RepDistiller's [f0, ..., f4] (models/resnetv2.py, forward, lines 141-160): the stem's output
after its ReLU, then each stage's. The pre-activation stages are mdistiller's
feats["preact_feats"] (mdistiller/models/cifar/resnetv2.py, forward, lines 170-190): f0 again,
then each stage's last block's sum before its ReLU (Bottleneck.forward, lines 76-86); the
preact norms are that block's bn3 in each of the four stages (get_bn_before_relu, lines
131-145).
"""
from functools import partial
from typing import ClassVar

import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, conv, norm_affine
from ijckd_jax.models.resnet_blocks import Bottleneck


class BottleneckResNet(ImageClassifier):
    """A CIFAR ResNet of Bottleneck stages; `blocks` gives each stage's length."""
    blocks: tuple = (3, 4, 6, 3)
    classifier_name: ClassVar[str] = 'linear'

    def backbone(self, images, train):
        x = conv(64, 3, 1, 1, dtype=self.dtype, name='conv1')(images)
        x = nn.relu(BatchNorm(dtype=self.dtype, name='bn1')(x, train))
        stages, preact_stages, norms = [x], [x], []
        settings = zip(self.blocks, (64, 128, 256, 512), (1, 2, 2, 2))
        for stage, (blocks, planes, stride) in enumerate(settings, start=1):
            for index in range(blocks):
                x, preact = Bottleneck(planes, stride if index == 0 else 1, self.dtype, 'shortcut',
                                       name=f'layer{stage}.{index}')(x, train)
            stages.append(x)
            preact_stages.append(preact)
            norms.append(norm_affine(self, f'layer{stage}.{blocks - 1}', Bottleneck.last_norm))
        return x, tuple(stages), tuple(preact_stages), tuple(norms)


MODELS = {'ResNet50': partial(BottleneckResNet, blocks=(3, 4, 6, 3))}
