"""mdistiller's ImageNet MobileNetV1 (Howard et al. 2017): MobileNetV1.

A 3×3 stride-2 conv-BN-ReLU stem, then 13 depthwise-separable blocks, all inside the
Sequential `model`; the classifier pools the 1024-channel output of model.13 (after its ReLU).
"""
from functools import partial

import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, conv

# (output channels, stride) of model.1 ... model.13.
SEPARABLE_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                    (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class MobileNetV1(ImageClassifier):
    """model.0 = conv_bn; model.i = conv_dw: depthwise 3×3-BN-ReLU (.0, .1), pointwise 1×1-BN-ReLU (.3, .4)."""

    def backbone(self, images, train):
        norm = partial(BatchNorm, dtype=self.dtype)
        x = conv(32, 3, 2, 1, dtype=self.dtype, name='model.0.0')(images)
        x = nn.relu(norm(name='model.0.1')(x, train))
        for index, (width, stride) in enumerate(SEPARABLE_BLOCKS, start=1):
            x = conv(x.shape[-1], 3, stride, 1, groups=x.shape[-1], dtype=self.dtype,
                     name=f'model.{index}.0')(x)
            x = nn.relu(norm(name=f'model.{index}.1')(x, train))
            x = conv(width, 1, dtype=self.dtype, name=f'model.{index}.3')(x)
            x = nn.relu(norm(name=f'model.{index}.4')(x, train))
        return x


MODELS = {'MobileNetV1': MobileNetV1}
