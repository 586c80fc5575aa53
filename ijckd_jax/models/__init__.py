"""The backbone zoo under the field's names (RepDistiller for CIFAR, torchvision/mdistiller for ImageNet)."""
import difflib

import jax
import jax.numpy as jnp

from ijckd_jax.models import (mobilenet_v1, mobilenet_v2, resnet_cifar, resnet_cifar_bottleneck,
                              resnet_imagenet, shufflenet_v1, shufflenet_v2, vgg, wrn)
from ijckd_jax.models.base import ImageClassifier
from ijckd_jax.models.layers import ModelOutput

CIFAR_MODELS = {
    **resnet_cifar.MODELS, **wrn.MODELS, **vgg.MODELS, **resnet_cifar_bottleneck.MODELS,
    **mobilenet_v2.MODELS, **shufflenet_v1.MODELS, **shufflenet_v2.MODELS,
}
IMAGENET_MODELS = {**resnet_imagenet.MODELS, **mobilenet_v1.MODELS}
MODELS = {**CIFAR_MODELS, **IMAGENET_MODELS}


def check_model_name(name: str) -> None:
    """Raises ValueError naming the valid models (and the closest one) if `name` is unknown."""
    if name in MODELS:
        return
    close = difflib.get_close_matches(name, MODELS, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ''
    raise ValueError(f"Unknown model '{name}'.{hint} Valid models: {', '.join(MODELS)}. "
                     "(CIFAR 'ResNet50' is the bottleneck network of RepDistiller; "
                     "'resnet50' is torchvision's ImageNet one.)")


def create_model(name: str, num_classes: int = 100, dtype=jnp.float32) -> ImageClassifier:
    """The Flax module for `name`; dtype is the compute dtype (parameters stay float32)."""
    check_model_name(name)
    return MODELS[name](num_classes=num_classes, dtype=dtype)


def default_image_size(name: str) -> int:
    """The input resolution the model is built for: 32 for the CIFAR zoo, 224 for ImageNet."""
    check_model_name(name)
    return 224 if name in IMAGENET_MODELS else 32


def abstract_variables(name: str, num_classes: int = 100):
    """The shapes and dtypes of the model's variables {'params', 'batch_stats'}, computing nothing."""
    model = create_model(name, num_classes)
    size = default_image_size(name)
    images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), images)


__all__ = ['MODELS', 'CIFAR_MODELS', 'IMAGENET_MODELS', 'ImageClassifier', 'ModelOutput',
           'abstract_variables', 'check_model_name', 'create_model', 'default_image_size']
