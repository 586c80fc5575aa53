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

    def feature_map(self, x):
        height = x.shape[2]
        x = self.pool0(F.relu(self.block0(x)))
        x = self.pool1(F.relu(self.block1(x)))
        x = self.pool2(F.relu(self.block2(x)))
        x = F.relu(self.block3(x))
        if height == 64:
            x = self.pool3(x)
        return F.relu(self.block4(x))

    def forward(self, x):
        return self.classifier(self.pool4(self.feature_map(x)).flatten(1))


MODELS = {
    'vgg8': partial(VGG, CONFIGS['S']),
    'vgg11': partial(VGG, CONFIGS['A']),
    'vgg13': partial(VGG, CONFIGS['B']),
    'vgg16': partial(VGG, CONFIGS['D']),
    'vgg19': partial(VGG, CONFIGS['E']),
}
