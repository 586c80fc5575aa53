"""CIFAR ResNets (He et al. 2016) in RepDistiller's layout: resnet8 ... resnet110, resnet8x4, resnet32x4.

Post-activation BasicBlocks, depth 6n+2, a 3×3 stem, three stages of strides 1/2/2; the
classifier pools the last stage's output (after its ReLU). The stages are RepDistiller's
[f0, f1, f2, f3] (models/resnet.py, forward, lines 178-200): the stem's output after its
ReLU, then each stage's. The pre-activation stages are mdistiller's feats["preact_feats"]
(mdistiller/models/cifar/resnet.py, forward, lines 184-206): f0 again, then each stage's last
block's sum before its ReLU (BasicBlock.forward, lines 30-49); the preact norms are that
block's bn2 in each stage (get_bn_before_relu, lines 167-179).
"""
from functools import partial

import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, conv, norm_affine
from ijckd_jax.models.resnet_blocks import BasicBlock


class CifarResNet(ImageClassifier):
    """ResNet-depth for CIFAR: `widths` are the stem's and the three stages' channels."""
    depth: int = 20
    widths: tuple = (16, 16, 32, 64)

    def backbone(self, images, train):
        blocks_per_stage = (self.depth - 2) // 6
        x = conv(self.widths[0], 3, 1, 1, dtype=self.dtype, name='conv1')(images)
        x = nn.relu(BatchNorm(dtype=self.dtype, name='bn1')(x, train))
        stages, preact_stages, norms = [x], [x], []
        for stage, (planes, stride) in enumerate(zip(self.widths[1:], (1, 2, 2)), start=1):
            for index in range(blocks_per_stage):
                x, preact = BasicBlock(planes, stride if index == 0 else 1, self.dtype,
                                       name=f'layer{stage}.{index}')(x, train)
            stages.append(x)
            preact_stages.append(preact)
            norms.append(norm_affine(self, f'layer{stage}.{blocks_per_stage - 1}', BasicBlock.last_norm))
        return x, tuple(stages), tuple(preact_stages), tuple(norms)


def cifar_resnet(depth, widths=(16, 16, 32, 64)):
    return partial(CifarResNet, depth=depth, widths=widths)


WIDE = (32, 64, 128, 256)
MODELS = {
    'resnet8': cifar_resnet(8),
    'resnet14': cifar_resnet(14),
    'resnet20': cifar_resnet(20),
    'resnet32': cifar_resnet(32),
    'resnet44': cifar_resnet(44),
    'resnet56': cifar_resnet(56),
    'resnet110': cifar_resnet(110),
    'resnet8x4': cifar_resnet(8, WIDE),
    'resnet32x4': cifar_resnet(32, WIDE),
}
