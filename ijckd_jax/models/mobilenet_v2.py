"""MobileNetV2 (Sandler et al. 2018) in RepDistiller's layout: 'MobileNetV2' is its mobile_half.

A stride-2 3×3 stem, seven stages of inverted residuals (the first, with expansion 1, still
has its expansion conv) and a 1×1 conv to 1280 channels, whose output the classifier pools.
The stages are RepDistiller's [f0, ..., f4] (models/mobilenetv2.py, forward, lines 132-158):
the stem's output after its ReLU, then the outputs (linear, no ReLU) of blocks 1, 2, 4 and 6;
f4 comes before conv2, so it is not the map the classifier pools. mdistiller's forward
(mdistiller/models/cifar/mobilenetv2.py, lines 137-163) lists no feats["preact_feats"], and
the block outputs have no ReLU: the pre-activation stages are the stages. The preact norms
are get_bn_before_relu's (lines 121-126): conv.7, the projection's BatchNorm, of the last block
of blocks 1, 2, 4 and 6 (before the residual sum where that block has one).
"""
from functools import partial
from typing import Any

import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, conv, norm_affine


def stage_settings(expansion):
    """(expansion, channels, blocks, first stride) of each stage, before the width multiplier."""
    return ((1, 16, 1, 1), (expansion, 24, 2, 1), (expansion, 32, 3, 2), (expansion, 64, 4, 2),
            (expansion, 96, 3, 1), (expansion, 160, 3, 2), (expansion, 320, 1, 1))


# The `blocks` stages after which RepDistiller's forward takes f1, f2, f3, f4.
STAGE_ENDS = (1, 2, 4, 6)


class InvertedResidual(nn.Module):
    """Expanding 1×1, depthwise 3×3, linear 1×1 projection; identity residual if shapes match."""
    features: int
    stride: int
    expansion: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        norm = partial(BatchNorm, dtype=self.dtype)
        hidden = x.shape[-1] * self.expansion
        out = conv(hidden, 1, dtype=self.dtype, name='conv.0')(x)
        out = nn.relu(norm(name='conv.1')(out, train))
        out = conv(hidden, 3, self.stride, 1, groups=hidden, dtype=self.dtype, name='conv.3')(out)
        out = nn.relu(norm(name='conv.4')(out, train))
        out = conv(self.features, 1, dtype=self.dtype, name='conv.6')(out)
        out = norm(name='conv.7')(out, train)
        if self.stride == 1 and x.shape[-1] == self.features:
            return x + out
        return out


class MobileNetV2(ImageClassifier):
    """MobileNetV2 with expansion T and a width multiplier; the defaults are mobile_half."""
    expansion: int = 6
    width_mult: float = 0.5
    classifier_name = 'classifier.0'

    def backbone(self, images, train):
        x = conv(int(32 * self.width_mult), 3, 2, 1, dtype=self.dtype, name='conv1.0')(images)
        x = nn.relu(BatchNorm(dtype=self.dtype, name='conv1.1')(x, train))
        stages, norms = [x], []
        settings = stage_settings(self.expansion)
        for stage, (expansion, channels, blocks, stride) in enumerate(settings):
            for index in range(blocks):
                x = InvertedResidual(int(channels * self.width_mult), stride if index == 0 else 1,
                                     expansion, self.dtype,
                                     name=f'blocks.{stage}.{index}')(x, train)
            if stage in STAGE_ENDS:
                stages.append(x)
                norms.append(norm_affine(self, f'blocks.{stage}.{blocks - 1}', 'conv.7'))
        last_channels = int(1280 * self.width_mult) if self.width_mult > 1.0 else 1280
        x = conv(last_channels, 1, dtype=self.dtype, name='conv2.0')(x)
        features = nn.relu(BatchNorm(dtype=self.dtype, name='conv2.1')(x, train))
        return features, tuple(stages), tuple(stages), tuple(norms)


MODELS = {'MobileNetV2': partial(MobileNetV2, expansion=6, width_mult=0.5)}
