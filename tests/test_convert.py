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
@pytest.mark.parametrize('name, arguments, expected', [
    ('resnet8_vanilla', ['--arch', 'wrn_16_1'],
     'The checkpoint does not fit wrn_16_1 with 100 classes (62 missing keys, e.g. block1.layer.0.bn1.bias [16]; '
     '40 unexpected keys, e.g. layer1.0.bn1.bias [16]; 4 shape mismatches, e.g. bn1.bias [16] vs [64]); '
     'its keys and shapes fit resnet8 with 100 classes: pass --arch resnet8.'),
    ('resnet8_vanilla', ['--arch', 'resnet8', '--num-classes', '10'],
     'The checkpoint does not fit resnet8 with 10 classes (2 shape mismatches, e.g. fc.bias [100] vs [10]); its '
     'keys and shapes fit resnet8 with 100 classes: pass --num-classes 100.'),
    ('weights', [], "Cannot infer the architecture from the name 'weights/ckpt_epoch_240'; its keys and shapes "
                    'fit resnet8: pass --arch resnet8.'),
])
def test_a_checkpoint_of_another_model_is_one_line_naming_the_one_it_fits(name, arguments, expected, tmp_path, capsys):
    """A wrong --arch or --num-classes, or a name that names no model: the architecture and
    class count the keys and shapes fit, in one line, instead of a listing of every key."""
    path = save_repdistiller(tmp_path / name, trained_looking_model())
    out = tmp_path / 'teacher'
    assert convert_torch_weights.main([path, *arguments, '--out', str(out)]) == 1
    assert capsys.readouterr().err.splitlines() == [f'error: {expected}']
    assert not out.exists()


def test_a_checkpoint_that_fits_no_model_lists_every_mismatch(tmp_path, capsys):
    """No model of the zoo to point to: every missing and unexpected key by name and shape."""
    state = {key.replace('fc.', 'head.'): value for key, value in trained_looking_model().state_dict().items()}
    torch.save(state, tmp_path / 'renamed.pth')
    assert convert_torch_weights.main([str(tmp_path / 'renamed.pth'), '--arch', 'resnet8',
                                       '--out', str(tmp_path / 'out')]) == 1
    assert capsys.readouterr().err.splitlines()[1:] == [
        '2 missing keys (needed by resnet8 with 100 classes):', '  fc.bias [100]', '  fc.weight [100, 64]',
        '2 unexpected keys (not in resnet8 with 100 classes):', '  head.bias [100]', '  head.weight [100, 64]']
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


@pytest.mark.quick
def test_a_missing_file_is_named_before_the_architecture_is_inferred(tmp_path, capsys):
    path = tmp_path / 'teacher.pth'  # a name that names no model
    assert convert_torch_weights.main([str(path), '--out', str(tmp_path / 'out')]) == 1
    assert capsys.readouterr().err.splitlines() == [f'error: Checkpoint {path} does not exist or is not a file.']
    assert os.listdir(tmp_path) == []


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
