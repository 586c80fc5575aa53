"""mdistiller's ImageNet MobileNetV1 (Howard et al. 2017): MobileNetV1.

A 3×3 stride-2 conv-BN-ReLU stem, then 13 depthwise-separable blocks, all inside the
Sequential `model`; the classifier pools the 1024-channel output of model.13 (after its ReLU).
The stages are mdistiller's feats["feats"] (mdistiller/models/imagenet/mobilenetv1.py,
forward, lines 46-57): the outputs of model.3, model.5, model.11 and model.13 after their
ReLU; no stem map. The pre-activation stages are its feats["preact_feats"] (same lines): the
same blocks' last BatchNorm output (model.i.4) before the ReLU; the preact norms are those
four BatchNorms (get_bn_before_relu, lines 61-66: model[i][-2]).
"""
from functools import partial

import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, conv, norm_affine

# (output channels, stride) of model.1 ... model.13.
SEPARABLE_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                    (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# The blocks after which mdistiller's forward takes feat1 ... feat4.
STAGE_ENDS = (3, 5, 11, 13)


class MobileNetV1(ImageClassifier):
    """model.0 = conv_bn; model.i = conv_dw: depthwise 3×3-BN-ReLU (.0, .1), pointwise 1×1-BN-ReLU (.3, .4)."""

    def backbone(self, images, train):
        norm = partial(BatchNorm, dtype=self.dtype)
        x = conv(32, 3, 2, 1, dtype=self.dtype, name='model.0.0')(images)
        x = nn.relu(norm(name='model.0.1')(x, train))
        stages, preact_stages, norms = [], [], []
        for index, (width, stride) in enumerate(SEPARABLE_BLOCKS, start=1):
            x = conv(x.shape[-1], 3, stride, 1, groups=x.shape[-1], dtype=self.dtype,
                     name=f'model.{index}.0')(x)
            x = nn.relu(norm(name=f'model.{index}.1')(x, train))
            x = conv(width, 1, dtype=self.dtype, name=f'model.{index}.3')(x)
            preact = norm(name=f'model.{index}.4')(x, train)
            x = nn.relu(preact)
            if index in STAGE_ENDS:
                stages.append(x)
                preact_stages.append(preact)
                norms.append(norm_affine(self, f'model.{index}.4'))
        return x, tuple(stages), tuple(preact_stages), tuple(norms)


MODELS = {'MobileNetV1': MobileNetV1}
