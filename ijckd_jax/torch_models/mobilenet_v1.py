"""mdistiller's ImageNet MobileNetV1 (models/imagenet/mobilenetv1.py), for reference.

The original always builds a 1000-class fc; here the class count is an argument.
"""
import torch.nn as nn

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

    def feature_map(self, x):
        return self.model[:14](x)

    def forward(self, x):
        return self.fc(self.model(x).reshape(-1, 1024))


MODELS = {'MobileNetV1': MobileNetV1}
