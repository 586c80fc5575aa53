"""The post-activation residual blocks the CIFAR and ImageNet ResNets share (He et al. 2016).

Each returns its output and its pre-activation, the sum before the last ReLU (what
mdistiller's blocks return as `preact` when `is_last`, mdistiller/models/cifar/resnet.py lines
30-49 and 70-93); `last_norm` names the BatchNorm on the residual branch just before that sum,
the one get_bn_before_relu() lists (lines 167-179).
"""
from functools import partial
from typing import Any, ClassVar

import jax.numpy as jnp
import flax.linen as nn

from ijckd_jax.models.layers import BatchNorm, conv


def shortcut(x, width, stride, train, dtype, name):
    """The identity, or a 1×1 conv-BN (`name`.0, `name`.1) where the shape changes."""
    if stride == 1 and x.shape[-1] == width:
        return x
    x = conv(width, 1, stride, dtype=dtype, name=f'{name}.0')(x)
    return BatchNorm(dtype=dtype, name=f'{name}.1')(x, train)


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut, then ReLU: (output, pre-activation)."""
    planes: int
    stride: int = 1
    dtype: Any = jnp.float32
    shortcut_name: str = 'downsample'  # torchvision and RepDistiller's resnet.py
    last_norm: ClassVar[str] = 'bn2'

    @nn.compact
    def __call__(self, x, train: bool):
        norm = partial(BatchNorm, dtype=self.dtype)
        out = conv(self.planes, 3, self.stride, 1, dtype=self.dtype, name='conv1')(x)
        out = nn.relu(norm(name='bn1')(out, train))
        out = conv(self.planes, 3, 1, 1, dtype=self.dtype, name='conv2')(out)
        out = norm(name='bn2')(out, train)
        residual = shortcut(x, self.planes, self.stride, train, self.dtype, self.shortcut_name)
        preact = out + residual
        return nn.relu(preact), preact


class Bottleneck(nn.Module):
    """conv1×1-BN-ReLU-conv3×3(stride)-BN-ReLU-conv1×1(4× width)-BN, plus the shortcut, then ReLU:
    (output, pre-activation)."""
    planes: int
    stride: int = 1
    dtype: Any = jnp.float32
    shortcut_name: str = 'downsample'  # 'shortcut' in RepDistiller's resnetv2.py
    last_norm: ClassVar[str] = 'bn3'

    @nn.compact
    def __call__(self, x, train: bool):
        norm = partial(BatchNorm, dtype=self.dtype)
        width = 4 * self.planes
        out = conv(self.planes, 1, dtype=self.dtype, name='conv1')(x)
        out = nn.relu(norm(name='bn1')(out, train))
        out = conv(self.planes, 3, self.stride, 1, dtype=self.dtype, name='conv2')(out)
        out = nn.relu(norm(name='bn2')(out, train))
        out = conv(width, 1, dtype=self.dtype, name='conv3')(out)
        out = norm(name='bn3')(out, train)
        residual = shortcut(x, width, self.stride, train, self.dtype, self.shortcut_name)
        preact = out + residual
        return nn.relu(preact), preact
