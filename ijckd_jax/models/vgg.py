"""CIFAR VGGs with BatchNorm in RepDistiller's layout (its vgg*_bn): vgg8 ... vgg19.

Five blocks of conv3×3-BN-ReLU; 2×2 max pools after the first three, and after the
fourth only at 64×64 input. The classifier pools ReLU(last block's output). The stages are
RepDistiller's [f0, ..., f4] (models/vgg.py, forward, lines 64-98): each block's output after
its ReLU, before the block's max pool; f4 is the map pool4 averages. The pre-activation
stages are mdistiller's feats["preact_feats"] (mdistiller/models/cifar/vgg.py, forward, lines
71-106): f0 after its ReLU, then blocks 1-4's last BatchNorm output before its ReLU; the
preact norms are those four BatchNorms (get_bn_before_relu, lines 61-66: block1[-1] ...
block4[-1], each Sequential ending with its BatchNorm).
"""
from functools import partial
from typing import ClassVar

import flax.linen as nn

from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import BatchNorm, conv, norm_affine

CONFIGS = {
    'S': ((64,), (128,), (256,), (512,), (512,)),
    'A': ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    'B': ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    'D': ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    'E': ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512),
          (512, 512, 512, 512)),
}


class VGG(ImageClassifier):
    """VGG with BatchNorm; `config` gives each block's conv widths."""
    config: tuple = CONFIGS['S']
    classifier_name: ClassVar[str] = 'classifier'

    def backbone(self, images, train):
        x = images
        stages, preact_stages, norms = [], [], []
        for block, widths in enumerate(self.config):
            # Each block's Sequential drops its last ReLU, but the forward applies one after
            # the block, so every conv is followed by BN-ReLU. Sequential indices: conv at 3j,
            # BatchNorm at 3j+1.
            for index, width in enumerate(widths):
                x = conv(width, 3, 1, 1, bias=True, dtype=self.dtype,
                         name=f'block{block}.{3 * index}')(x)
                preact = BatchNorm(dtype=self.dtype, name=f'block{block}.{3 * index + 1}')(x, train)
                x = nn.relu(preact)
            stages.append(x)
            preact_stages.append(preact if block else x)  # f0 is taken after its ReLU
            if block:
                norms.append(norm_affine(self, f'block{block}.{3 * len(widths) - 2}'))
            if block < 3 or (block == 3 and images.shape[1] == 64):
                x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        return x, tuple(stages), tuple(preact_stages), tuple(norms)


MODELS = {
    'vgg8': partial(VGG, config=CONFIGS['S']),
    'vgg11': partial(VGG, config=CONFIGS['A']),
    'vgg13': partial(VGG, config=CONFIGS['B']),
    'vgg16': partial(VGG, config=CONFIGS['D']),
    'vgg19': partial(VGG, config=CONFIGS['E']),
}
