"""Wide ResNets (Zagoruyko & Komodakis 2016) in RepDistiller's layout: wrn_16_1 ... wrn_40_2.

Pre-activation BasicBlocks, depth 6n+4, widths 16/16k/32k/64k; the classifier pools
ReLU(BN(last stage's output)). The stages are RepDistiller's [f0, f1, f2, f3] (models/wrn.py,
forward, lines 103-122): the stem conv's output and each stage's, all before any BN-ReLU
(the blocks are pre-activation), so the last is not the map the classifier pools. The
pre-activation stages are mdistiller's feats["preact_feats"] (mdistiller/models/cifar/wrn.py,
forward, lines 126-150): f0, then f1 and f2 through the BatchNorm that opens the next stage
(block2.layer.0.bn1, block3.layer.0.bn1) and f3 through the final bn1, each before its ReLU;
the preact norms are those three BatchNorms (get_bn_before_relu, lines 116-121). mdistiller
applies them a second time for these maps; here they are the blocks' own outputs, the same
values.
"""
from functools import partial
from typing import Any

import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, conv, norm_affine


class BasicBlock(nn.Module):
    """BN-ReLU-conv3×3-BN-ReLU-conv3×3, plus the input or a 1×1 conv of its activation:
    (output, bn1's output before its ReLU)."""
    planes: int
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        norm = partial(BatchNorm, dtype=self.dtype)
        normalized = norm(name='bn1')(x, train)
        activated = nn.relu(normalized)
        out = conv(self.planes, 3, self.stride, 1, dtype=self.dtype, name='conv1')(activated)
        out = nn.relu(norm(name='bn2')(out, train))
        out = conv(self.planes, 3, 1, 1, dtype=self.dtype, name='conv2')(out)
        if x.shape[-1] == self.planes:
            return x + out, normalized
        # As in the original, the projection shortcut sees the activated input, not the raw one.
        return conv(self.planes, 1, self.stride, dtype=self.dtype,
                    name='convShortcut')(activated) + out, normalized


class WideResNet(ImageClassifier):
    """WRN-depth-widen_factor: a 3×3 stem, three stages of strides 1/2/2, then BN-ReLU."""
    depth: int = 16
    widen_factor: int = 1

    def backbone(self, images, train):
        blocks_per_stage = (self.depth - 4) // 6
        x = conv(16, 3, 1, 1, dtype=self.dtype, name='conv1')(images)
        stages, preact_stages, norms = [x], [x], []
        widths = (16 * self.widen_factor, 32 * self.widen_factor, 64 * self.widen_factor)
        for stage, (planes, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
            for index in range(blocks_per_stage):
                x, normalized = BasicBlock(planes, stride if index == 0 else 1, self.dtype,
                                           name=f'block{stage}.layer.{index}')(x, train)
                if stage > 1 and index == 0:
                    # The previous stage's map through the BatchNorm that opens this stage.
                    preact_stages.append(normalized)
                    norms.append(norm_affine(self, f'block{stage}.layer.0', 'bn1'))
            stages.append(x)
        normalized = BatchNorm(dtype=self.dtype, name='bn1')(x, train)
        preact_stages.append(normalized)
        norms.append(norm_affine(self, 'bn1'))
        return nn.relu(normalized), tuple(stages), tuple(preact_stages), tuple(norms)


def wide_resnet(depth, widen_factor):
    return partial(WideResNet, depth=depth, widen_factor=widen_factor)


MODELS = {
    'wrn_16_1': wide_resnet(16, 1),
    'wrn_16_2': wide_resnet(16, 2),
    'wrn_40_1': wide_resnet(40, 1),
    'wrn_40_2': wide_resnet(40, 2),
}
