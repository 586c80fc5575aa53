"""PyTorch definitions of the zoo, with the original projects' module names and forward passes.

They are the independent reference the Flax models are checked against (tests/) and what
`convert_torch_weights.py --verify` runs; only this package and the converter import torch.
Every model's `forward(images)` returns the logits exactly as the original project computes
them, `feature_map(images)` returns the map that its classifier pools, and
`feature_list(images)` the intermediate maps its forward lists: RepDistiller's
`forward(x, is_feat=True)[0][:-1]`, mdistiller's `forward(x)[1]["feats"]`;
`preact_feature_list(images)` is mdistiller's `forward(x)[1]["preact_feats"]` and
`bn_before_relu()` its `get_bn_before_relu()`, what OFD distils and its margins.
"""
from ijckd_jax.models import check_model_name, create_model
from ijckd_jax.torch_models import (mobilenet_v1, mobilenet_v2, resnet_cifar,
                                    resnet_cifar_bottleneck, resnet_imagenet, shufflenet_v1,
                                    shufflenet_v2, vgg, wrn)

TORCH_MODELS = {
    **resnet_cifar.MODELS, **wrn.MODELS, **vgg.MODELS, **resnet_cifar_bottleneck.MODELS,
    **mobilenet_v2.MODELS, **shufflenet_v1.MODELS, **shufflenet_v2.MODELS,
    **resnet_imagenet.MODELS, **mobilenet_v1.MODELS,
}


def create_torch_model(name: str, num_classes: int = 100):
    """The PyTorch module for `name`, in eval mode."""
    check_model_name(name)
    return TORCH_MODELS[name](num_classes=num_classes).eval()


def torch_classifier(name: str, model):
    """The linear layer of a torch model of this package (its module name is the Flax one's)."""
    return model.get_submodule(create_model(name).classifier_name)
