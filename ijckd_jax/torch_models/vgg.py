"""CIFAR VGGs with BatchNorm as RepDistiller defines them (models/vgg.py, vgg*_bn)."""
from functools import partial

import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    'S': [[64], [128], [256], [512], [512]],
    'A': [[64], [128], [256, 256], [512, 512], [512, 512]],
    'B': [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    'D': [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    'E': [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def make_block(widths, in_channels):
    """conv3×3-BN-ReLU per width, without the last ReLU (the forward applies it)."""
    layers = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True)]
        in_channels = width
    return nn.Sequential(*layers[:-1])


class VGG(nn.Module):
    """VGG with BatchNorm: five blocks, max pools between them, an average pool and a Linear."""

    def __init__(self, config, num_classes=100):
        super().__init__()
        in_channels = [3] + [widths[-1] for widths in config[:-1]]
        for index, (widths, channels) in enumerate(zip(config, in_channels)):
            setattr(self, f'block{index}', make_block(widths, channels))
        for index in range(4):
            setattr(self, f'pool{index}', nn.MaxPool2d(2, 2))
        self.pool4 = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(512, num_classes)

    def feature_list(self, x):
        """[f0, ..., f4] of RepDistiller's forward (models/vgg.py, lines 64-98): each block's
        output after its ReLU, before its pool."""
        height = x.shape[2]
        f0 = F.relu(self.block0(x))
        f1 = F.relu(self.block1(self.pool0(f0)))
        f2 = F.relu(self.block2(self.pool1(f1)))
        f3 = F.relu(self.block3(self.pool2(f2)))
        f4 = F.relu(self.block4(self.pool3(f3) if height == 64 else f3))
        return [f0, f1, f2, f3, f4]

    def preact_feature_list(self, x):
        """mdistiller's feats["preact_feats"] (mdistiller/models/cifar/vgg.py, forward, lines
        71-106): f0 after its ReLU, then blocks 1-4's outputs before their ReLU."""
        height = x.shape[2]
        f0 = F.relu(self.block0(x))
        f1_pre = self.block1(self.pool0(f0))
        f2_pre = self.block2(self.pool1(F.relu(f1_pre)))
        f3_pre = self.block3(self.pool2(F.relu(f2_pre)))
        f3 = F.relu(f3_pre)
        f4_pre = self.block4(self.pool3(f3) if height == 64 else f3)
        return [f0, f1_pre, f2_pre, f3_pre, f4_pre]

    def bn_before_relu(self):
        """mdistiller's get_bn_before_relu (lines 61-66): each block's last module, a BatchNorm."""
        return [self.block1[-1], self.block2[-1], self.block3[-1], self.block4[-1]]

    def feature_map(self, x):
        return self.feature_list(x)[-1]

    def forward(self, x):
        return self.classifier(self.pool4(self.feature_map(x)).flatten(1))


MODELS = {
    'vgg8': partial(VGG, CONFIGS['S']),
    'vgg11': partial(VGG, CONFIGS['A']),
    'vgg13': partial(VGG, CONFIGS['B']),
    'vgg16': partial(VGG, CONFIGS['D']),
    'vgg19': partial(VGG, CONFIGS['E']),
}
