"""RepDistiller's CIFAR ResNet50 (models/resnetv2.py), for reference."""
from functools import partial

import torch.nn as nn
import torch.nn.functional as F


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 with the stride, 1×1 expand ×4; an empty Sequential is the identity."""
    expansion = 4

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        width = self.expansion * planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != width:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, width, 1, stride, bias=False),
                                          nn.BatchNorm2d(width))

    def preact(self, x):
        """The sum before the last ReLU (mdistiller's `preact`, models/cifar/resnetv2.py 76-86)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x)

    def forward(self, x):
        return F.relu(self.preact(x))


class ResNet(nn.Module):
    """3×3 stem, four Bottleneck stages of strides 1/2/2/2, average pool, `linear`."""

    def __init__(self, blocks, num_classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        stages = zip(blocks, (64, 128, 256, 512), (1, 2, 2, 2))
        for stage, (count, planes, stride) in enumerate(stages, start=1):
            layers = [Bottleneck(in_planes, planes, stride)]
            in_planes = planes * Bottleneck.expansion
            layers += [Bottleneck(in_planes, planes) for _ in range(1, count)]
            setattr(self, f'layer{stage}', nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = nn.Linear(512 * Bottleneck.expansion, num_classes)

    def feature_list(self, x):
        """[f0, ..., f4] of RepDistiller's forward (models/resnetv2.py, lines 141-160)."""
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(f0)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f0, f1, f2, f3, self.layer4(f3)]

    def preact_feature_list(self, x):
        """mdistiller's feats["preact_feats"] (mdistiller/models/cifar/resnetv2.py, forward, lines
        170-190): f0, then each stage's last block's sum before its ReLU."""
        out = F.relu(self.bn1(self.conv1(x)))
        preacts = [out]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            preact = stage[-1].preact(stage[:-1](out))
            out = F.relu(preact)
            preacts.append(preact)
        return preacts

    def bn_before_relu(self):
        """mdistiller's get_bn_before_relu (lines 131-145), Bottleneck: each stage's last bn3."""
        return [self.layer1[-1].bn3, self.layer2[-1].bn3, self.layer3[-1].bn3, self.layer4[-1].bn3]

    def feature_map(self, x):
        return self.feature_list(x)[-1]

    def forward(self, x):
        return self.linear(self.avgpool(self.feature_map(x)).flatten(1))


MODELS = {'ResNet50': partial(ResNet, (3, 4, 6, 3))}
