"""Connectors and spatial alignment against PyTorch (SimKD's nn.Sequential 'transfer')."""
import jax
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ijckd_jax.connectors import Connector
from ijckd_jax.models.layers import average_pool_to
from ijckd_jax.convert import state_dict_to_variables

pytestmark = pytest.mark.quick  # every test of this file is in the quick tier


def torch_connector(kind, student_channels, teacher_channels, factor=2):
    """The same connector as SimKD builds it: conv (no bias), BN, ReLU, repeated."""
    bottleneck = teacher_channels // factor
    shapes = {'1x1': [(student_channels, teacher_channels, 1)],
              '1x1-1x1': [(student_channels, bottleneck, 1), (bottleneck, teacher_channels, 1)],
              '1x1-3x3-1x1': [(student_channels, bottleneck, 1), (bottleneck, bottleneck, 3),
                              (bottleneck, teacher_channels, 1)]}[kind]
    layers = []
    for inputs, outputs, kernel_size in shapes:
        layers += [nn.Conv2d(inputs, outputs, kernel_size, padding=kernel_size // 2, bias=False),
                   nn.BatchNorm2d(outputs), nn.ReLU()]
    transfer = nn.Sequential(*layers)
    with torch.no_grad():
        for module in transfer:
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
    return nn.ModuleDict({'transfer': transfer})


@pytest.mark.parametrize('kind', ['1x1', '1x1-1x1', '1x1-3x3-1x1'])
@pytest.mark.parametrize('train', [False, True])
def test_connector_matches_pytorch(kind, train):
    torch.manual_seed(0)
    reference = torch_connector(kind, 12, 16).train(train)
    state = {key: value.numpy().copy() for key, value in reference.state_dict().items()}
    connector = Connector(kind, teacher_channels=16)
    features = np.random.default_rng(0).standard_normal((4, 8, 8, 12)).astype(np.float32)
    shapes = jax.eval_shape(lambda: connector.init(jax.random.key(0), features, train=False))
    variables = state_dict_to_variables(state, shapes, f'the {kind} connector')

    output, _ = connector.apply(variables, features, train=train, mutable=['batch_stats'])
    with torch.no_grad():
        expected = reference['transfer'](torch.from_numpy(features.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(output, expected.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-5)
    torch_count = sum(parameter.numel() for parameter in reference.parameters())
    assert sum(leaf.size for leaf in jax.tree.leaves(variables['params'])) == torch_count


@pytest.mark.parametrize('size, pooled', [(8, 8), (8, 4), (8, 2), (8, 1), (8, 3), (7, 3), (8, 5), (3, 5), (4, 8)])
def test_average_pool_to_matches_adaptive_average_pool(size, pooled):
    """Block means where the sizes divide, PyTorch's overlapping windows where they do not (8 → 3,
    7 → 3, 8 → 5), and its up-sampling (3 → 5, 4 → 8); measured ≤ 1.8e-7 on values of size ~1."""
    features = np.random.default_rng(1).standard_normal((2, size, size, 3)).astype(np.float32)
    expected = F.adaptive_avg_pool2d(torch.from_numpy(features.transpose(0, 3, 1, 2)), pooled)
    np.testing.assert_allclose(average_pool_to(features, pooled), expected.numpy().transpose(0, 2, 3, 1),
                               rtol=0, atol=1e-6)


def test_unknown_connector_names_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown connector '3x3'; valid connectors: 1x1, 1x1-1x1, 1x1-3x3-1x1"):
        Connector('3x3', 16).init(jax.random.key(0), np.zeros((1, 4, 4, 8), np.float32), train=False)
