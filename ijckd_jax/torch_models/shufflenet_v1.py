"""ShuffleNetV1 as RepDistiller defines it (models/ShuffleNetv1.py), for reference."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ijckd_jax.torch_models.stages import stem_then_stage_preacts, stem_then_stages


def channel_shuffle(x, groups):
    """[N, C, H, W] → [N, g, C/g, H, W] → [N, C/g, g, H, W] → [N, C, H, W]."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).permute(0, 2, 1, 3, 4)
    return x.reshape(batch, channels, height, width)


class Bottleneck(nn.Module):
    def __init__(self, in_planes, out_planes, stride, groups):
        super().__init__()
        self.stride = stride
        mid_planes = out_planes // 4
        first_groups = 1 if in_planes == 24 else groups
        self.conv1 = nn.Conv2d(in_planes, mid_planes, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.conv2 = nn.Conv2d(mid_planes, mid_planes, 3, stride, 1, groups=mid_planes, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.conv3 = nn.Conv2d(mid_planes, out_planes, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)

    def preact(self, x):
        """The concatenation or sum before the last ReLU (mdistiller's `preact`,
        mdistiller/models/cifar/ShuffleNetv1.py lines 50-62)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.conv1.groups)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            return torch.cat([out, F.avg_pool2d(x, 3, stride=2, padding=1)], 1)
        return out + x

    def forward(self, x):
        return F.relu(self.preact(x))


class ShuffleNet(nn.Module):
    def __init__(self, out_planes=(240, 480, 960), num_blocks=(4, 8, 4), groups=3, num_classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        in_planes = 24
        for stage, (planes, blocks) in enumerate(zip(out_planes, num_blocks), start=1):
            # The first block concatenates its pooled input, so it adds only the missing channels.
            layers = [Bottleneck(in_planes, planes - in_planes, 2, groups)]
            layers += [Bottleneck(planes, planes, 1, groups) for _ in range(1, blocks)]
            setattr(self, f'layer{stage}', nn.Sequential(*layers))
            in_planes = planes
        self.linear = nn.Linear(out_planes[-1], num_classes)

    def feature_list(self, x):
        """[f0, f1, f2, f3] of RepDistiller's forward (models/ShuffleNetv1.py, lines 95-113)."""
        return stem_then_stages(self, x)

    def preact_feature_list(self, x):
        """mdistiller's feats["preact_feats"] (forward, lines 112-134): f0, then each stage's
        last block's pre-activation."""
        return stem_then_stage_preacts(self, x)

    def bn_before_relu(self):
        """mdistiller's get_bn_before_relu (lines 107-110)."""
        raise NotImplementedError('ShuffleNet currently is not supported for "Overhaul" teacher')

    def feature_map(self, x):
        return self.feature_list(x)[-1]

    def forward(self, x):
        return self.linear(F.avg_pool2d(self.feature_map(x), 4).flatten(1))


MODELS = {'ShuffleV1': ShuffleNet}
