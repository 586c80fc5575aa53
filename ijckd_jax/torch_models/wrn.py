"""Wide ResNets as RepDistiller defines them (models/wrn.py), for reference."""
from functools import partial

import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """Pre-activation block; a 1×1 shortcut conv of the activated input when the width changes."""

    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)

    def forward(self, x):
        activated = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(activated)))
        out = self.conv2(out)
        return (x if self.equal_in_out else self.convShortcut(activated)) + out


class NetworkBlock(nn.Module):
    """One stage: `layer`, a Sequential of BasicBlocks, the first of which has the stride."""

    def __init__(self, blocks, in_planes, out_planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[
            BasicBlock(in_planes if index == 0 else out_planes, out_planes,
                       stride if index == 0 else 1)
            for index in range(blocks)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-widen_factor for 32×32 inputs."""

    def __init__(self, depth, widen_factor, num_classes=100):
        super().__init__()
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        blocks = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(blocks, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(blocks, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(blocks, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)

    def feature_list(self, x):
        """[f0, f1, f2, f3] of RepDistiller's forward (models/wrn.py, lines 103-122): the stem
        conv's and each stage's output, before any BN-ReLU."""
        f0 = self.conv1(x)
        f1 = self.block1(f0)
        f2 = self.block2(f1)
        return [f0, f1, f2, self.block3(f2)]

    def preact_feature_list(self, x):
        """mdistiller's feats["preact_feats"] (mdistiller/models/cifar/wrn.py, forward, lines
        126-150): f0, then f1, f2, f3 through the BatchNorms get_bn_before_relu lists."""
        f0, f1, f2, f3 = self.feature_list(x)
        return [f0, self.block2.layer[0].bn1(f1), self.block3.layer[0].bn1(f2), self.bn1(f3)]

    def bn_before_relu(self):
        """mdistiller's get_bn_before_relu (lines 116-121)."""
        return [self.block2.layer[0].bn1, self.block3.layer[0].bn1, self.bn1]

    def feature_map(self, x):
        return F.relu(self.bn1(self.feature_list(x)[-1]))

    def forward(self, x):
        return self.fc(F.avg_pool2d(self.feature_map(x), 8).flatten(1))


MODELS = {
    'wrn_16_1': partial(WideResNet, 16, 1),
    'wrn_16_2': partial(WideResNet, 16, 2),
    'wrn_40_1': partial(WideResNet, 40, 1),
    'wrn_40_2': partial(WideResNet, 40, 2),
}
