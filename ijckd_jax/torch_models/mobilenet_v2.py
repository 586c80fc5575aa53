"""MobileNetV2 as RepDistiller defines it (models/mobilenetv2.py), for reference: mobile_half."""
from functools import partial

import torch.nn as nn


def stage_settings(expansion):
    """(expansion, channels, blocks, first stride) of each stage, before the width multiplier."""
    return ((1, 16, 1, 1), (expansion, 24, 2, 1), (expansion, 32, 3, 2), (expansion, 64, 4, 2),
            (expansion, 96, 3, 1), (expansion, 160, 3, 2), (expansion, 320, 1, 1))


def conv_bn_relu(inputs, outputs, kernel_size, stride=1):
    padding = kernel_size // 2
    return nn.Sequential(nn.Conv2d(inputs, outputs, kernel_size, stride, padding, bias=False),
                         nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inputs, outputs, stride, expansion):
        super().__init__()
        hidden = inputs * expansion
        self.use_residual = stride == 1 and inputs == outputs
        self.conv = nn.Sequential(
            nn.Conv2d(inputs, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, outputs, 1, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, expansion, width_mult, num_classes=100, input_size=32):
        super().__init__()
        channels = int(32 * width_mult)
        self.conv1 = conv_bn_relu(3, channels, 3, stride=2)
        self.blocks = nn.ModuleList()
        for stage_expansion, stage_channels, blocks, stride in stage_settings(expansion):
            outputs = int(stage_channels * width_mult)
            layers = []
            for index in range(blocks):
                layers.append(InvertedResidual(channels, outputs, stride if index == 0 else 1,
                                               stage_expansion))
                channels = outputs
            self.blocks.append(nn.Sequential(*layers))
        last_channels = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = conv_bn_relu(channels, last_channels, 1)
        self.classifier = nn.Sequential(nn.Linear(last_channels, num_classes))
        self.avgpool = nn.AvgPool2d(input_size // 16, ceil_mode=True)

    def feature_list(self, x):
        """[f0, ..., f4] of RepDistiller's forward (models/mobilenetv2.py, lines 132-158): the
        stem's output, then the outputs of blocks 1, 2, 4 and 6 (before conv2)."""
        f0 = self.conv1(x)
        f1 = self.blocks[1](self.blocks[0](f0))
        f2 = self.blocks[2](f1)
        f3 = self.blocks[4](self.blocks[3](f2))
        f4 = self.blocks[6](self.blocks[5](f3))
        return [f0, f1, f2, f3, f4]

    def preact_feature_list(self, x):
        """mdistiller's forward (mdistiller/models/cifar/mobilenetv2.py, lines 137-163) lists no
        feats["preact_feats"]; the block outputs have no ReLU: the feature list."""
        return self.feature_list(x)

    def bn_before_relu(self):
        """mdistiller's get_bn_before_relu (lines 121-126)."""
        return [self.blocks[1][-1].conv[-1], self.blocks[2][-1].conv[-1], self.blocks[4][-1].conv[-1],
                self.blocks[6][-1].conv[-1]]

    def feature_map(self, x):
        return self.conv2(self.feature_list(x)[-1])

    def forward(self, x):
        return self.classifier(self.avgpool(self.feature_map(x)).flatten(1))


MODELS = {'MobileNetV2': partial(MobileNetV2, 6, 0.5)}
