"""CIFAR ResNets as RepDistiller defines them (models/resnet.py), for reference."""
from functools import partial

import torch.nn as nn

# RepDistiller's CIFAR BasicBlock is torchvision's, module names included.
from ijckd_jax.torch_models.resnet_imagenet import BasicBlock
from ijckd_jax.torch_models.stages import stem_then_stage_preacts, stem_then_stages


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
        return stem_then_stages(self, x)

    def preact_feature_list(self, x):
        """mdistiller's feats["preact_feats"] (mdistiller/models/cifar/resnet.py, forward, lines
        184-206): f0, then each stage's last block's sum before its ReLU."""
        return stem_then_stage_preacts(self, x)

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
