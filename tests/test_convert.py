"""The converter: every checkpoint format users have, and every way a checkpoint can be wrong."""
import os
import pickle
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch

from ijckd_jax.cli import convert as convert_torch_weights
from ijckd_jax.convert import ConversionError, convert_state_dict, read_torch_checkpoint
from ijckd_jax.frozen_model import load_frozen_model
from ijckd_jax.torch_models import create_torch_model

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trained_looking_model(name='resnet8', num_classes=100):
    """A PyTorch model whose BatchNorm statistics are not the identity, as after training."""
    torch.manual_seed(0)
    model = create_torch_model(name, num_classes).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(16, 3, 32, 32) * 2 + 0.5)
    return model.eval()


def save_repdistiller(directory, model):
    """The way RepDistiller saves a teacher: <model>_vanilla/ckpt_epoch_240.pth holding {'model': ...}."""
    os.makedirs(directory)
    path = os.path.join(directory, 'ckpt_epoch_240.pth')
    torch.save({'epoch': 240, 'model': model.state_dict(), 'best_acc': torch.tensor(70.0),
                'optimizer': {'state': {}, 'param_groups': [{'lr': 0.05}]}}, path)
    return path


@pytest.mark.quick
def test_repdistiller_checkpoint_converts_and_verifies(tmp_path, capsys):
    model = trained_looking_model()
    path = save_repdistiller(tmp_path / 'resnet8_vanilla', model)
    out = tmp_path / 'teacher'
    assert convert_torch_weights.main([path, '--out', str(out), '--verify']) == 0  # arch inferred
    printed = capsys.readouterr().out
    difference = float(printed.split('PyTorch vs Flax: ')[1].split()[0])
    assert difference <= 1e-4

    frozen = load_frozen_model(out)
    assert (frozen.model_name, frozen.num_classes) == ('resnet8', 100)
    expected = convert_state_dict({k: v.numpy() for k, v in model.state_dict().items()}, 'resnet8')
    jax.tree.map(np.testing.assert_array_equal, frozen.variables, expected)
    assert sorted(os.listdir(tmp_path)) == ['resnet8_vanilla', 'teacher']  # no staging left


def test_data_parallel_prefix_and_plain_state_dict_give_the_same_variables(tmp_path):
    state = trained_looking_model().state_dict()
    torch.save({'module.' + key: value for key, value in state.items()}, tmp_path / 'dp.pth')
    torch.save(state, tmp_path / 'plain.pth')
    from_parallel = convert_state_dict(read_torch_checkpoint(tmp_path / 'dp.pth'), 'resnet8')
    from_plain = convert_state_dict(read_torch_checkpoint(tmp_path / 'plain.pth'), 'resnet8')
    jax.tree.map(np.testing.assert_array_equal, from_parallel, from_plain)


@pytest.mark.quick
def test_wrong_architecture_lists_keys_and_writes_nothing(tmp_path, capsys):
    path = save_repdistiller(tmp_path / 'resnet8_vanilla', trained_looking_model())
    out = tmp_path / 'teacher'
    assert convert_torch_weights.main([path, '--arch', 'wrn_16_1', '--out', str(out)]) == 1
    error = capsys.readouterr().err
    assert 'missing keys' in error and 'block1.layer.0.conv1.weight [16, 16, 3, 3]' in error
    assert 'unexpected keys' in error and 'layer1.0.conv1.weight [16, 16, 3, 3]' in error
    assert not out.exists()


def test_shape_mismatch_is_listed_with_both_shapes(tmp_path, capsys):
    torch.save(trained_looking_model(num_classes=10).state_dict(), tmp_path / 'ten.pth')
    arguments = [str(tmp_path / 'ten.pth'), '--arch', 'resnet8', '--num-classes', '100',
                 '--out', str(tmp_path / 'out')]
    assert convert_torch_weights.main(arguments) == 1
    error = capsys.readouterr().err
    assert 'fc.weight [10, 64] vs [100, 64]' in error and 'fc.bias [10] vs [100]' in error
    assert not (tmp_path / 'out').exists()


def test_unknown_architecture_lists_the_valid_ones(tmp_path, capsys):
    torch.save(trained_looking_model().state_dict(), tmp_path / 'model.pth')
    arguments = [str(tmp_path / 'model.pth'), '--arch', 'resnet9', '--out', str(tmp_path / 'out')]
    assert convert_torch_weights.main(arguments) == 1
    assert "Unknown model 'resnet9'" in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


@pytest.mark.quick
def test_truncated_and_missing_files_are_reported(tmp_path):
    torch.save(trained_looking_model().state_dict(), tmp_path / 'model.pth')
    content = (tmp_path / 'model.pth').read_bytes()
    (tmp_path / 'truncated.pth').write_bytes(content[:len(content) // 2])
    with pytest.raises(ConversionError, match='not a readable PyTorch checkpoint.*truncated'):
        read_torch_checkpoint(tmp_path / 'truncated.pth')
    with pytest.raises(ConversionError, match='does not exist'):
        read_torch_checkpoint(tmp_path / 'absent.pth')


class Arbitrary:
    """Stands for a Python object that some training scripts pickle into checkpoints."""


def test_pickled_objects_need_explicit_permission(tmp_path):
    state = trained_looking_model().state_dict()
    torch.save({'model': state, 'arguments': Arbitrary()}, tmp_path / 'objects.pth',
               pickle_module=pickle)
    with pytest.raises(ConversionError, match='--allow-pickle'):
        read_torch_checkpoint(tmp_path / 'objects.pth')
    assert len(read_torch_checkpoint(tmp_path / 'objects.pth', allow_pickle=True)) == len(state)


def test_existing_output_is_never_touched(tmp_path, capsys):
    torch.save(trained_looking_model().state_dict(), tmp_path / 'model.pth')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    arguments = [str(tmp_path / 'model.pth'), '--arch', 'resnet8', '--out', str(out)]
    assert convert_torch_weights.main(arguments) == 1
    assert 'already exists' in capsys.readouterr().err
    assert os.listdir(out) == ['keep.txt']


def test_command_line_runs_as_documented(tmp_path):
    path = save_repdistiller(tmp_path / 'resnet8_vanilla', trained_looking_model())
    result = subprocess.run([sys.executable, os.path.join(REPOSITORY, 'tools', 'convert_torch_weights.py'),
                             path, '--arch', 'resnet8', '--out', str(tmp_path / 'out'), '--verify'],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'largest absolute logit difference' in result.stdout
    assert (tmp_path / 'out' / 'model.json').is_file()
