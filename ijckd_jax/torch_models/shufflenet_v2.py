"""ShuffleNetV2 as RepDistiller defines it (models/ShuffleNetv2.py, net_size 1), for reference."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ijckd_jax.torch_models.stages import stem_then_stages


def channel_shuffle(x, groups=2):
    """[N, C, H, W] → [N, g, C/g, H, W] → [N, C/g, g, H, W] → [N, C, H, W]."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).permute(0, 2, 1, 3, 4)
    return x.reshape(batch, channels, height, width)


class BasicBlock(nn.Module):
    def __init__(self, in_channels, split_ratio=0.5):
        super().__init__()
        self.split_ratio = split_ratio
        channels = int(in_channels * split_ratio)
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def forward_with_preact(self, x):
        """The output and mdistiller's `preact` (mdistiller/models/cifar/ShuffleNetv2.py lines
        50-63): the kept half and bn3's output before the ReLU, concatenated, not shuffled."""
        split = int(x.size(1) * self.split_ratio)
        x1, x2 = x[:, :split], x[:, split:]
        out = F.relu(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        preact = self.bn3(self.conv3(out))
        return channel_shuffle(torch.cat([x1, F.relu(preact)], 1)), torch.cat([x1, preact], 1)

    def forward(self, x):
        return self.forward_with_preact(x)[0]


class DownBlock(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        mid_channels = out_channels // 2
        # Left branch: depthwise 3×3 then 1×1.
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 2, 1, groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        # Right branch: 1×1, depthwise 3×3, 1×1.
        self.conv3 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid_channels)
        self.conv4 = nn.Conv2d(mid_channels, mid_channels, 3, 2, 1, groups=mid_channels, bias=False)
        self.bn4 = nn.BatchNorm2d(mid_channels)
        self.conv5 = nn.Conv2d(mid_channels, mid_channels, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid_channels)

    def forward(self, x):
        left = self.bn1(self.conv1(x))
        left = F.relu(self.bn2(self.conv2(left)))
        right = F.relu(self.bn3(self.conv3(x)))
        right = self.bn4(self.conv4(right))
        right = F.relu(self.bn5(self.conv5(right)))
        return channel_shuffle(torch.cat([left, right], 1))


class ShuffleNetV2(nn.Module):
    def __init__(self, out_channels=(116, 232, 464, 1024), num_blocks=(3, 7, 3), num_classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        in_channels = 24
        for stage, (channels, blocks) in enumerate(zip(out_channels, num_blocks), start=1):
            layers = [DownBlock(in_channels, channels)]
            layers += [BasicBlock(channels) for _ in range(blocks)]
            setattr(self, f'layer{stage}', nn.Sequential(*layers))
            in_channels = channels
        self.conv2 = nn.Conv2d(out_channels[2], out_channels[3], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels[3])
        self.linear = nn.Linear(out_channels[3], num_classes)

    def feature_list(self, x):
        """[f0, f1, f2, f3] of RepDistiller's forward (models/ShuffleNetv2.py, lines 140-159)."""
        return stem_then_stages(self, x)

    def preact_feature_list(self, x):
        """mdistiller's feats["preact_feats"] (forward, lines 165-187): f0, then each stage's
        last BasicBlock's pre-activation."""
        out = F.relu(self.bn1(self.conv1(x)))
        preacts = [out]
        for stage in (self.layer1, self.layer2, self.layer3):
            out, preact = stage[-1].forward_with_preact(stage[:-1](out))
            preacts.append(preact)
        return preacts

    def bn_before_relu(self):
        """mdistiller's get_bn_before_relu (lines 157-160)."""
        raise NotImplementedError('ShuffleNetV2 currently is not supported for "Overhaul" teacher')

    def feature_map(self, x):
        return F.relu(self.bn2(self.conv2(self.feature_list(x)[-1])))

    def forward(self, x):
        return self.linear(F.avg_pool2d(self.feature_map(x), 4).flatten(1))


MODELS = {'ShuffleV2': ShuffleNetV2}
