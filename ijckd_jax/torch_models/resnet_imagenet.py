"""ImageNet ResNets as torchvision defines them (models/resnet.py), for reference."""
from functools import partial

import torch.nn as nn
import torch.nn.functional as F

from ijckd_jax.torch_models.stages import stage_preact


def downsample(inplanes, width, stride):
    """The 1×1 conv-BN shortcut, or None where the identity fits."""
    if stride == 1 and inplanes == width:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, width, 1, stride, bias=False), nn.BatchNorm2d(width))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample(inplanes, planes, stride)

    def preact(self, x):
        """The sum before the last ReLU (mdistiller's `preact`)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return out + residual

    def forward(self, x):
        return F.relu(self.preact(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.downsample = downsample(inplanes, width, stride)

    def preact(self, x):
        """The sum before the last ReLU (mdistiller's `preact`)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return out + residual

    def forward(self, x):
        return F.relu(self.preact(x))


class ResNet(nn.Module):
    def __init__(self, block, stage_sizes, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for stage, (blocks, planes) in enumerate(zip(stage_sizes, (64, 128, 256, 512)), start=1):
            stride = 1 if stage == 1 else 2
            layers = [block(inplanes, planes, stride)]
            inplanes = planes * block.expansion
            layers += [block(inplanes, planes) for _ in range(1, blocks)]
            setattr(self, f'layer{stage}', nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def feature_list(self, x):
        """mdistiller's feats["feats"] (mdistiller/models/imagenet/resnet.py, lines 164-189): the
        stem after its ReLU, before the max pool, then each stage's output after its ReLU."""
        stem = self.relu(self.bn1(self.conv1(x)))
        feat1 = self.layer1(self.maxpool(stem))
        feat2 = self.layer2(feat1)
        feat3 = self.layer3(feat2)
        return [stem, feat1, feat2, feat3, self.layer4(feat3)]

    def preact_feature_list(self, x):
        """mdistiller's feats["preact_feats"] (same forward, lines 164-192): the stem, then each
        stage's sum before its ReLU. As there, `stem` is taken before an in-place ReLU, which
        makes it the stem after its ReLU."""
        stem = self.bn1(self.conv1(x))
        out = self.maxpool(self.relu(stem))  # self.relu is nn.ReLU(inplace=True), as mdistiller's
        preacts = [stem]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            out, preact = stage_preact(stage, out)
            preacts.append(preact)
        return preacts

    def bn_before_relu(self):
        """mdistiller's get_bn_before_relu (lines 145-159): layer2-4's last bn3 (Bottleneck) or
        bn2 (BasicBlock); layer1's is commented out there."""
        name = 'bn3' if isinstance(self.layer1[0], Bottleneck) else 'bn2'
        return [getattr(stage[-1], name) for stage in (self.layer2, self.layer3, self.layer4)]

    def feature_map(self, x):
        return self.feature_list(x)[-1]

    def forward(self, x):
        return self.fc(self.avgpool(self.feature_map(x)).flatten(1))


MODELS = {
    'resnet18': partial(ResNet, BasicBlock, (2, 2, 2, 2)),
    'resnet34': partial(ResNet, BasicBlock, (3, 4, 6, 3)),
    'resnet50': partial(ResNet, Bottleneck, (3, 4, 6, 3)),
}
