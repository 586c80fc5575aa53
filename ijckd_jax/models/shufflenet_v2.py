"""ShuffleNetV2 (Ma et al. 2018) in RepDistiller's CIFAR layout: 'ShuffleV2', net size 1.

A 1×1 stem to 24 channels, three stages of a down-sampling block and split/shuffle basic
blocks, then a 1×1 conv-BN-ReLU to 1024 channels, whose output the classifier pools.
The stages are RepDistiller's [f0, f1, f2, f3] (models/ShuffleNetv2.py, forward, lines
140-159): the stem's output after its ReLU, then each stage's; f3 comes before conv2. The
pre-activation stages are mdistiller's feats["preact_feats"]
(mdistiller/models/cifar/ShuffleNetv2.py, forward, lines 165-187): f0, then each stage's last
BasicBlock's concatenation of its kept half and bn3's output before the ReLU, not shuffled
(BasicBlock.forward, lines 50-63). There are no preact norms: its get_bn_before_relu raises
NotImplementedError (lines 157-160).
"""
from functools import partial
from typing import Any

import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, channel_shuffle, conv


class BasicBlock(nn.Module):
    """Keeps half the channels, passes the rest through 1×1, depthwise 3×3, 1×1; shuffles:
    (output, the concatenation before the last ReLU and the shuffle)."""
    split_ratio: float = 0.5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        norm = partial(BatchNorm, dtype=self.dtype)
        split = int(x.shape[-1] * self.split_ratio)
        kept, out = x[..., :split], x[..., split:]
        out = conv(split, 1, dtype=self.dtype, name='conv1')(out)
        out = nn.relu(norm(name='bn1')(out, train))
        out = conv(split, 3, 1, 1, groups=split, dtype=self.dtype, name='conv2')(out)
        out = norm(name='bn2')(out, train)
        out = conv(split, 1, dtype=self.dtype, name='conv3')(out)
        out = norm(name='bn3')(out, train)
        preact = jnp.concatenate([kept, out], axis=-1)
        return channel_shuffle(jnp.concatenate([kept, nn.relu(out)], axis=-1), 2), preact


class DownBlock(nn.Module):
    """Concatenates stride-2 branches (depthwise 3×3, 1×1 | 1×1, depthwise 3×3, 1×1); shuffles."""
    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        norm = partial(BatchNorm, dtype=self.dtype)
        channels, middle = x.shape[-1], self.features // 2
        left = conv(channels, 3, 2, 1, groups=channels, dtype=self.dtype, name='conv1')(x)
        left = norm(name='bn1')(left, train)
        left = conv(middle, 1, dtype=self.dtype, name='conv2')(left)
        left = nn.relu(norm(name='bn2')(left, train))
        right = conv(middle, 1, dtype=self.dtype, name='conv3')(x)
        right = nn.relu(norm(name='bn3')(right, train))
        right = conv(middle, 3, 2, 1, groups=middle, dtype=self.dtype, name='conv4')(right)
        right = norm(name='bn4')(right, train)
        right = conv(middle, 1, dtype=self.dtype, name='conv5')(right)
        right = nn.relu(norm(name='bn5')(right, train))
        return channel_shuffle(jnp.concatenate([left, right], axis=-1), 2)


class ShuffleNetV2(ImageClassifier):
    """ShuffleNetV2 for 32×32 inputs; `widths` are the three stages' and the final conv's."""
    widths: tuple = (116, 232, 464, 1024)
    blocks_per_stage: tuple = (3, 7, 3)
    classifier_name = 'linear'

    def backbone(self, images, train):
        x = conv(24, 1, dtype=self.dtype, name='conv1')(images)
        x = nn.relu(BatchNorm(dtype=self.dtype, name='bn1')(x, train))
        stages, preact_stages = [x], [x]
        settings = zip(self.widths[:3], self.blocks_per_stage)
        for stage, (width, blocks) in enumerate(settings, start=1):
            x = DownBlock(width, self.dtype, name=f'layer{stage}.0')(x, train)
            for index in range(1, blocks + 1):
                x, preact = BasicBlock(dtype=self.dtype, name=f'layer{stage}.{index}')(x, train)
            stages.append(x)
            preact_stages.append(preact)
        x = conv(self.widths[3], 1, dtype=self.dtype, name='conv2')(x)
        features = nn.relu(BatchNorm(dtype=self.dtype, name='bn2')(x, train))
        return features, tuple(stages), tuple(preact_stages), ()


MODELS = {'ShuffleV2': ShuffleNetV2}
