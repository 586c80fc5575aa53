"""ShuffleNetV1 (Zhang et al. 2018) in RepDistiller's CIFAR layout: 'ShuffleV1', 3 groups.

A 1×1 stem to 24 channels and three stages of shuffle bottlenecks; each stage opens with a
stride-2 block that concatenates an average-pooled shortcut. The classifier pools the last
stage's output (after its ReLU). The stages are RepDistiller's [f0, f1, f2, f3]
(models/ShuffleNetv1.py, forward, lines 95-113): the stem's output after its ReLU, then
each stage's. The pre-activation stages are mdistiller's feats["preact_feats"]
(mdistiller/models/cifar/ShuffleNetv1.py, forward, lines 112-134): f0, then each stage's last
block's concatenation or sum before its ReLU (Bottleneck.forward, lines 50-62). There are no
preact norms: its get_bn_before_relu raises NotImplementedError (lines 107-110, "ShuffleNet
currently is not supported for 'Overhaul' teacher").
"""
from functools import partial
from typing import Any

import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, channel_shuffle, conv


class Bottleneck(nn.Module):
    """Grouped 1×1-BN-ReLU, shuffle, depthwise 3×3-BN-ReLU, grouped 1×1-BN, shortcut, ReLU:
    (output, pre-activation)."""
    features: int
    stride: int
    groups: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        norm = partial(BatchNorm, dtype=self.dtype)
        middle = self.features // 4
        # The stem's 24 channels are not split into groups.
        first_groups = 1 if x.shape[-1] == 24 else self.groups
        out = conv(middle, 1, groups=first_groups, dtype=self.dtype, name='conv1')(x)
        out = nn.relu(norm(name='bn1')(out, train))
        out = channel_shuffle(out, first_groups)
        out = conv(middle, 3, self.stride, 1, groups=middle, dtype=self.dtype, name='conv2')(out)
        out = nn.relu(norm(name='bn2')(out, train))
        out = conv(self.features, 1, groups=self.groups, dtype=self.dtype, name='conv3')(out)
        out = norm(name='bn3')(out, train)
        if self.stride == 2:
            # AvgPool2d(3, 2, 1) counts the zero padding, as PyTorch does by default: the zeros
            # padded first, then a plain window (which jax2onnx also exports exactly; it misreads
            # an explicit padding).
            padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
            shortcut = nn.avg_pool(padded, window_shape=(3, 3), strides=(2, 2))
            preact = jnp.concatenate([out, shortcut], axis=-1)
        else:
            preact = out + x
        return nn.relu(preact), preact


class ShuffleNetV1(ImageClassifier):
    """ShuffleNetV1 for 32×32 inputs."""
    widths: tuple = (240, 480, 960)
    blocks_per_stage: tuple = (4, 8, 4)
    groups: int = 3
    classifier_name = 'linear'

    def backbone(self, images, train):
        x = conv(24, 1, dtype=self.dtype, name='conv1')(images)
        x = nn.relu(BatchNorm(dtype=self.dtype, name='bn1')(x, train))
        stages, preact_stages = [x], [x]
        for stage, (width, blocks) in enumerate(zip(self.widths, self.blocks_per_stage), start=1):
            for index in range(blocks):
                # The strided first block concatenates its pooled input: it adds the rest.
                features, stride = (width - x.shape[-1], 2) if index == 0 else (width, 1)
                x, preact = Bottleneck(features, stride, self.groups, self.dtype,
                                       name=f'layer{stage}.{index}')(x, train)
            stages.append(x)
            preact_stages.append(preact)
        return x, tuple(stages), tuple(preact_stages), ()


MODELS = {'ShuffleV1': ShuffleNetV1}
