"""The stage lists of the CIFAR networks built as a stem (conv1, bn1, ReLU) then layer1-layer3:
RepDistiller's and mdistiller's ResNet, ShuffleNetV1 and ShuffleNetV2 list the same maps."""
import torch.nn.functional as F


def stage_preact(layer, x):
    """A stage's output and its last block's sum before the ReLU: (F.relu(preact), preact)."""
    preact = layer[-1].preact(layer[:-1](x))
    return F.relu(preact), preact


def stem_then_stages(model, x):
    """[f0, f1, f2, f3]: the stem's output, then each stage's."""
    f0 = F.relu(model.bn1(model.conv1(x)))
    f1 = model.layer1(f0)
    f2 = model.layer2(f1)
    return [f0, f1, f2, model.layer3(f2)]


def stem_then_stage_preacts(model, x):
    """[f0, preact1, preact2, preact3]: the stem's output, then each stage's last block's
    pre-activation, for blocks whose output is the ReLU of it."""
    out = F.relu(model.bn1(model.conv1(x)))
    preacts = [out]
    for stage in (model.layer1, model.layer2, model.layer3):
        out, preact = stage_preact(stage, out)
        preacts.append(preact)
    return preacts
