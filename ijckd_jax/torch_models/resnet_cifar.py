"""CIFAR ResNets as RepDistiller defines them (models/resnet.py), for reference."""
from functools import partial

import torch.nn as nn
import torch.nn.functional as F

# RepDistiller's CIFAR BasicBlock is torchvision's, module names included.
from ijckd_jax.torch_models.resnet_imagenet import BasicBlock, stage_preact


class ResNet(nn.Module):
    def __init__(self, depth, widths, num_classes=100):
        super().__init__()
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        inplanes = widths[0]
        for stage, (planes, stride) in enumerate(zip(widths[1:], (1, 2, 2)), start=1):
            layers = [BasicBlock(inplanes, planes, stride)]
            layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
            setattr(self, f'layer{stage}', nn.Sequential(*layers))
            inplanes = planes
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(widths[3], num_classes)

    def feature_list(self, x):
        """[f0, f1, f2, f3] of RepDistiller's forward (models/resnet.py, lines 178-200)."""
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(f0)
        f2 = self.layer2(f1)
        return [f0, f1, f2, self.layer3(f2)]

    def preact_feature_list(self, x):
        """mdistiller's feats["preact_feats"] (mdistiller/models/cifar/resnet.py, forward, lines
        184-206): f0, then each stage's last block's sum before its ReLU."""
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1, f1_pre = stage_preact(self.layer1, f0)
        f2, f2_pre = stage_preact(self.layer2, f1)
        return [f0, f1_pre, f2_pre, stage_preact(self.layer3, f2)[1]]

    def bn_before_relu(self):
        """mdistiller's get_bn_before_relu (lines 167-179), BasicBlock: each stage's last bn2."""
        return [self.layer1[-1].bn2, self.layer2[-1].bn2, self.layer3[-1].bn2]

    def feature_map(self, x):
        return self.feature_list(x)[-1]

    def forward(self, x):
        return self.fc(self.avgpool(self.feature_map(x)).flatten(1))


WIDE = (32, 64, 128, 256)
NARROW = (16, 16, 32, 64)
MODELS = {
    'resnet8': partial(ResNet, 8, NARROW),
    'resnet14': partial(ResNet, 14, NARROW),
    'resnet20': partial(ResNet, 20, NARROW),
    'resnet32': partial(ResNet, 32, NARROW),
    'resnet44': partial(ResNet, 44, NARROW),
    'resnet56': partial(ResNet, 56, NARROW),
    'resnet110': partial(ResNet, 110, NARROW),
    'resnet8x4': partial(ResNet, 8, WIDE),
    'resnet32x4': partial(ResNet, 32, WIDE),
}
