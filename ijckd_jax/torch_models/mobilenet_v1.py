"""mdistiller's ImageNet MobileNetV1 (models/imagenet/mobilenetv1.py), for reference.

The original always builds a 1000-class fc; here the class count is an argument.
"""
import torch.nn as nn
import torch.nn.functional as F

# (output channels, stride) of model.1 ... model.13.
SEPARABLE_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                    (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def conv_bn(inplanes, planes, stride):
    return nn.Sequential(nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(planes), nn.ReLU(inplace=True))


def conv_dw(inplanes, planes, stride):
    return nn.Sequential(nn.Conv2d(inplanes, inplanes, 3, stride, 1, groups=inplanes, bias=False),
                         nn.BatchNorm2d(inplanes), nn.ReLU(inplace=True),
                         nn.Conv2d(inplanes, planes, 1, 1, 0, bias=False),
                         nn.BatchNorm2d(planes), nn.ReLU(inplace=True))


class MobileNetV1(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        layers = [conv_bn(3, 32, 2)]
        inplanes = 32
        for planes, stride in SEPARABLE_BLOCKS:
            layers.append(conv_dw(inplanes, planes, stride))
            inplanes = planes
        self.model = nn.Sequential(*layers, nn.AvgPool2d(7))
        self.fc = nn.Linear(1024, num_classes)

    def feature_list(self, x):
        """mdistiller's feats["feats"] (mdistiller/models/imagenet/mobilenetv1.py, lines 46-57):
        the outputs of model.3, model.5, model.11 and model.13, after their ReLU."""
        feat1 = self.model[:4](x)
        feat2 = self.model[4:6](feat1)
        feat3 = self.model[6:12](feat2)
        return [feat1, feat2, feat3, self.model[12:14](feat3)]

    def preact_feature_list(self, x):
        """mdistiller's feats["preact_feats"] (forward, lines 46-58), transcribed: each listed
        block without its last ReLU."""
        feat1 = self.model[3][:-1](self.model[0:3](x))
        feat2 = self.model[5][:-1](self.model[4:5](F.relu(feat1)))
        feat3 = self.model[11][:-1](self.model[6:11](F.relu(feat2)))
        feat4 = self.model[13][:-1](self.model[12:13](F.relu(feat3)))
        return [feat1, feat2, feat3, feat4]

    def bn_before_relu(self):
        """mdistiller's get_bn_before_relu (lines 61-66)."""
        return [self.model[3][-2], self.model[5][-2], self.model[11][-2], self.model[13][-2]]

    def feature_map(self, x):
        return self.feature_list(x)[-1]

    def forward(self, x):
        return self.fc(self.model(x).reshape(-1, 1024))


MODELS = {'MobileNetV1': MobileNetV1}
