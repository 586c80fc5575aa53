"""Every model of the zoo against its PyTorch definition, through the converter."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from ijckd_jax.convert import convert_state_dict
from ijckd_jax.models import IMAGENET_MODELS, MODELS, create_model, default_image_size
from ijckd_jax.torch_models import create_torch_model

TOLERANCE = 1e-4
# Parameter counts of the PyTorch originals in millions, as published for RepDistiller's
# CIFAR-100 models, and exact counts
# of torchvision's ImageNet ResNets and mdistiller's MobileNetV1 at 1000 classes.
PUBLISHED_MILLIONS = {
    'resnet8x4': 1.234, 'resnet32x4': 7.434, 'resnet20': 0.278, 'resnet32': 0.473,
    'resnet56': 0.862, 'resnet110': 1.737, 'wrn_40_2': 2.255, 'wrn_16_2': 0.703,
    'wrn_40_1': 0.570, 'vgg8': 3.965, 'vgg13': 9.462, 'ResNet50': 23.705, 'ShuffleV1': 0.949,
    'ShuffleV2': 1.356, 'MobileNetV2': 0.813,
}
PUBLISHED_EXACT = {'resnet18': 11_689_512, 'resnet34': 21_797_672, 'resnet50': 25_557_032,
                   'MobileNetV1': 4_231_976}
# ModelOutput.stages of one model per family (and VGG at 64×64, where pool3 applies), as
# [height, width, channels], read off the lists the sources' forward passes return:
# RepDistiller models/*.py `feat[:-1]`, mdistiller models/imagenet/*.py `feats["feats"]`.
STAGE_SHAPES = {
    ('resnet8', 32): [(32, 32, 16), (32, 32, 16), (16, 16, 32), (8, 8, 64)],
    ('resnet32x4', 32): [(32, 32, 32), (32, 32, 64), (16, 16, 128), (8, 8, 256)],
    ('ResNet50', 32): [(32, 32, 64), (32, 32, 256), (16, 16, 512), (8, 8, 1024), (4, 4, 2048)],
    ('wrn_40_2', 32): [(32, 32, 16), (32, 32, 32), (16, 16, 64), (8, 8, 128)],
    ('vgg8', 32): [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512), (4, 4, 512)],
    ('vgg8', 64): [(64, 64, 64), (32, 32, 128), (16, 16, 256), (8, 8, 512), (4, 4, 512)],
    ('MobileNetV2', 32): [(16, 16, 16), (16, 16, 12), (8, 8, 16), (4, 4, 48), (2, 2, 160)],
    ('ShuffleV1', 32): [(32, 32, 24), (16, 16, 240), (8, 8, 480), (4, 4, 960)],
    ('ShuffleV2', 32): [(32, 32, 24), (16, 16, 116), (8, 8, 232), (4, 4, 464)],
    ('resnet18', 224): [(112, 112, 64), (56, 56, 64), (28, 28, 128), (14, 14, 256), (7, 7, 512)],
    ('resnet50', 224): [(112, 112, 64), (56, 56, 256), (28, 28, 512), (14, 14, 1024),
                        (7, 7, 2048)],
    ('MobileNetV1', 224): [(56, 56, 128), (28, 28, 256), (14, 14, 512), (7, 7, 1024)],
}
# ModelOutput.preact_stages and the width of each preact_norms pair, read off mdistiller's
# feats["preact_feats"] and get_bn_before_relu() (mdistiller/models/cifar/*.py,
# models/imagenet/*.py): the maps have the stages' shapes (MobileNetV2: the stages themselves;
# it lists no preact_feats); the ShuffleNets have no BatchNorms before ReLU, the ImageNet
# ResNets none for layer1.
PREACT_NORM_WIDTHS = {
    ('resnet8', 32): [16, 32, 64],
    ('resnet32x4', 32): [64, 128, 256],
    ('ResNet50', 32): [256, 512, 1024, 2048],
    ('wrn_40_2', 32): [32, 64, 128],
    ('vgg8', 32): [128, 256, 512, 512],
    ('vgg8', 64): [128, 256, 512, 512],
    ('MobileNetV2', 32): [12, 16, 48, 160],
    ('ShuffleV1', 32): [],
    ('ShuffleV2', 32): [],
    ('resnet18', 224): [128, 256, 512],
    ('resnet50', 224): [512, 1024, 2048],
    ('MobileNetV1', 224): [128, 256, 512, 1024],
}


def num_classes_of(name):
    return 1000 if name in IMAGENET_MODELS else 100


def randomized_torch_model(name, seed=0):
    """The PyTorch model with default init and non-trivial BatchNorm statistics and affines."""
    torch.manual_seed(seed)
    model = create_torch_model(name, num_classes_of(name))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.0)
                module.bias.uniform_(-0.2, 0.2)
    return model


def nhwc(tensor):
    return tensor.numpy().transpose(0, 2, 3, 1)


def state_dict_of(model):
    return {key: value.numpy().copy() for key, value in model.state_dict().items()}


def parameter_count(tree):
    return sum(np.size(leaf) for leaf in jax.tree.leaves(tree))


@partial(jax.jit, static_argnums=0)
def forward_and_reclassify(model, variables, images):
    """The model's outputs, and its classifier applied again to its own feature map."""
    output = model.apply(variables, images)
    return output, model.apply(variables, output.features, method='classify')


@pytest.mark.parametrize('name', [pytest.param(name, marks=pytest.mark.quick) if name == 'resnet8' else name
                                  for name in MODELS])
def test_model_matches_pytorch(name):
    torch_model = randomized_torch_model(name)
    variables = convert_state_dict(state_dict_of(torch_model), name)
    size = default_image_size(name)
    images = np.random.default_rng(1).standard_normal((2, 3, size, size), np.float32)
    with torch.no_grad():
        torch_logits = torch_model(torch.from_numpy(images)).numpy()
        torch_features = nhwc(torch_model.feature_map(torch.from_numpy(images)))
        torch_stages = [nhwc(stage) for stage in torch_model.feature_list(torch.from_numpy(images))]
        torch_preact_stages = [nhwc(stage) for stage in torch_model.preact_feature_list(torch.from_numpy(images))]
    try:
        torch_norms = [(norm.weight.detach().numpy(), norm.bias.detach().numpy())
                       for norm in torch_model.bn_before_relu()]
    except NotImplementedError:  # mdistiller's ShuffleNets
        torch_norms = []

    model = create_model(name, num_classes_of(name))
    output, reclassified = forward_and_reclassify(model, variables, images.transpose(0, 2, 3, 1))

    assert output.logits.shape == torch_logits.shape
    np.testing.assert_allclose(output.logits, torch_logits, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(output.features, torch_features, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(output.pooled, torch_features.mean(axis=(1, 2)), rtol=0, atol=TOLERANCE)
    assert [stage.shape for stage in output.stages] == [stage.shape for stage in torch_stages]
    for ours, theirs in zip(output.stages, torch_stages):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOLERANCE)
    assert [stage.shape for stage in output.preact_stages] == [stage.shape for stage in torch_preact_stages]
    for ours, theirs in zip(output.preact_stages, torch_preact_stages):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOLERANCE)
    assert len(output.preact_norms) == len(torch_norms)
    for (scale, bias), (weight, torch_bias) in zip(output.preact_norms, torch_norms):
        np.testing.assert_array_equal(scale, weight)  # the converted parameters themselves
        np.testing.assert_array_equal(bias, torch_bias)
    np.testing.assert_allclose(reclassified, output.logits, rtol=0, atol=1e-5)

    torch_count = sum(parameter.numel() for parameter in torch_model.parameters())
    assert parameter_count(variables['params']) == torch_count
    if name in PUBLISHED_MILLIONS:
        assert round(torch_count / 1e6, 3) == PUBLISHED_MILLIONS[name]
    if name in PUBLISHED_EXACT:
        assert torch_count == PUBLISHED_EXACT[name]


@pytest.mark.quick
@pytest.mark.parametrize('name, size', STAGE_SHAPES)
def test_stages_are_the_sources_feature_list(name, size):
    """The number and shapes of the stage maps, their pre-activation maps and BatchNorm
    parameters, traced without compiling."""
    model = create_model(name, num_classes_of(name))
    images = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    output = jax.eval_shape(model.init_with_output, jax.random.key(0), images)[0]
    assert [stage.shape for stage in output.stages] == [(2, *shape) for shape in STAGE_SHAPES[name, size]]
    assert [stage.shape for stage in output.preact_stages] == [(2, *shape) for shape in STAGE_SHAPES[name, size]]
    assert [(scale.shape, bias.shape) for scale, bias in output.preact_norms] == [
        ((width,), (width,)) for width in PREACT_NORM_WIDTHS[name, size]]


@pytest.mark.quick
def test_training_mode_matches_pytorch_batch_norm():
    """Train-mode outputs and updated running statistics (unbiased variance, momentum 0.1)."""
    torch_model = randomized_torch_model('resnet8').train()
    variables = convert_state_dict(state_dict_of(torch_model), 'resnet8')
    images = np.random.default_rng(2).standard_normal((8, 3, 32, 32), np.float32)
    with torch.no_grad():
        torch_logits = torch_model(torch.from_numpy(images)).numpy()
    updated_torch = convert_state_dict(state_dict_of(torch_model), 'resnet8')

    model = create_model('resnet8')
    output, updates = model.apply(variables, images.transpose(0, 2, 3, 1), train=True,
                                  mutable=['batch_stats'])
    np.testing.assert_allclose(output.logits, torch_logits, rtol=0, atol=TOLERANCE)
    for ours, theirs in zip(jax.tree.leaves(updates['batch_stats']),
                            jax.tree.leaves(updated_torch['batch_stats'])):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_bfloat16_compute_keeps_float32_parameters():
    model = create_model('resnet8', dtype=jnp.bfloat16)
    images = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    variables = model.init(jax.random.key(1), images)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    low = model.apply(variables, images)
    high = create_model('resnet8').apply(variables, images)
    assert low.features.dtype == jnp.bfloat16 and low.logits.dtype == jnp.float32
    scale = float(jnp.abs(high.logits).max())
    assert float(jnp.abs(low.logits - high.logits).max()) < 0.05 * scale


@pytest.mark.quick
def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown model 'resnet9'.*resnet8x4.*MobileNetV1"):
        create_model('resnet9')
