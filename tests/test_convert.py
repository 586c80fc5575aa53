"""The converter: every checkpoint format users have, and every way a checkpoint can be wrong."""
import json
import os
import pickle
import re
import subprocess
import sys
import types
import warnings

import jax
import numpy as np
import pytest
import torch
from PIL import Image

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


def test_data_parallel_prefix_legacy_format_and_plain_state_dict_give_the_same_variables(tmp_path):
    state = trained_looking_model().state_dict()
    torch.save({'module.' + key: value for key, value in state.items()}, tmp_path / 'dp.pth')
    torch.save(state, tmp_path / 'legacy.pth', _use_new_zipfile_serialization=False)  # torch < 1.6's format
    torch.save(state, tmp_path / 'plain.pth')
    from_plain = convert_state_dict(read_torch_checkpoint(tmp_path / 'plain.pth'), 'resnet8')
    for other in ('dp.pth', 'legacy.pth'):
        jax.tree.map(np.testing.assert_array_equal,
                     convert_state_dict(read_torch_checkpoint(tmp_path / other), 'resnet8'), from_plain)


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
def test_truncated_damaged_and_missing_files_are_reported(tmp_path, capsys):
    """A checkpoint cut in half, in either of torch.save's formats, or with a byte of its pickle
    changed: one line that says so, with torch's reason, and no --allow-pickle to try."""
    state = trained_looking_model().state_dict()
    torch.save(state, tmp_path / 'zip.pth')
    torch.save(state, tmp_path / 'legacy.pth', _use_new_zipfile_serialization=False)
    for name in ('zip.pth', 'legacy.pth'):
        content = (tmp_path / name).read_bytes()
        (tmp_path / f'truncated_{name}').write_bytes(content[:len(content) // 2])
    content = bytearray((tmp_path / 'zip.pth').read_bytes())
    # data.pkl is the archive's first entry: its bytes follow the local header, its name and extra field.
    pickle_start = 30 + int.from_bytes(content[26:28], 'little') + int.from_bytes(content[28:30], 'little')
    assert content[pickle_start:pickle_start + 2] == b'\x80\x02'  # pickle protocol 2
    content[pickle_start + 2] = 0xfe  # its first opcode becomes none
    (tmp_path / 'damaged.pth').write_bytes(content)
    reasons = {'truncated_zip.pth': 'PytorchStreamReader failed reading zip archive: failed finding central directory',
               'truncated_legacy.pth': 'unexpected EOF, expected [0-9]+ more bytes',
               'damaged.pth': 'Unsupported operand 254'}
    for name, reason in reasons.items():
        path = tmp_path / name
        assert convert_torch_weights.main([str(path), '--out', str(tmp_path / 'out')]) == 1
        assert re.fullmatch(rf'error: {re.escape(str(path))} is a truncated or damaged PyTorch checkpoint '
                            rf'\(torch.load: {reason}\); copy or download it again.\n', capsys.readouterr().err)
    with pytest.raises(ConversionError, match='does not exist'):
        read_torch_checkpoint(tmp_path / 'absent.pth')
    assert not (tmp_path / 'out').exists()


@pytest.mark.quick
def test_a_missing_file_is_named_before_the_architecture_is_inferred(tmp_path, capsys):
    path = tmp_path / 'teacher.pth'  # a name that names no model
    assert convert_torch_weights.main([str(path), '--out', str(tmp_path / 'out')]) == 1
    assert capsys.readouterr().err.splitlines() == [f'error: Checkpoint {path} does not exist or is not a file.']
    assert os.listdir(tmp_path) == []


class Arbitrary:
    """Stands for a Python object that some training scripts pickle into checkpoints."""


def test_pickled_objects_need_explicit_permission(tmp_path):
    """In both of torch.save's formats; the refusal names the class it met."""
    state = trained_looking_model().state_dict()
    for new_format in (True, False):
        path = tmp_path / f'objects_{new_format}.pth'
        torch.save({'model': state, 'arguments': Arbitrary()}, path, pickle_module=pickle,
                   _use_new_zipfile_serialization=new_format)
        with pytest.raises(ConversionError) as refusal:
            read_torch_checkpoint(path)
        assert str(refusal.value) == (
            f'{path} holds Python objects besides tensors (e.g. {__name__}.Arbitrary), which torch.load '
            'refuses to unpickle safely. If you trust the file, pass --allow-pickle.')
        assert len(read_torch_checkpoint(path, allow_pickle=True)) == len(state)


def test_pickled_objects_of_a_class_that_is_not_here_are_one_line(tmp_path, monkeypatch):
    """With --allow-pickle, objects of the training code's classes (a module this process lacks)."""
    training_code = types.ModuleType('training_code')
    training_code.Arguments = type('Arguments', (), {'__module__': 'training_code'})
    monkeypatch.setitem(sys.modules, 'training_code', training_code)
    torch.save({'model': trained_looking_model().state_dict(), 'arguments': training_code.Arguments()},
               tmp_path / 'objects.pth')
    monkeypatch.delitem(sys.modules, 'training_code')
    with pytest.raises(ConversionError) as refusal:
        read_torch_checkpoint(tmp_path / 'objects.pth', allow_pickle=True)
    assert str(refusal.value) == (
        f"{tmp_path / 'objects.pth'} holds Python objects whose class cannot be imported here (No module named "
        "'training_code'); where the model was trained, save its state dict alone with "
        "torch.save(model.state_dict(), 'model.pth').")


READS = 'the converter reads a PyTorch checkpoint, a .pth/.pt file that torch.save wrote.'


def write_onnx(path):
    """A one-node ONNX model, written as onnx.save writes every model."""
    import onnx
    from onnx import helper

    def value(name):
        return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'relu', [value('x')], [value('y')])
    onnx.save(helper.make_model(graph), path)


def write_exported(path):
    """A jax.export artifact as tools/export_student.py serializes one (of a small function: which
    function it holds is not what the converter reads)."""
    images = jax.ShapeDtypeStruct((1, 4, 4, 3), np.uint8)
    path.write_bytes(jax.export.export(jax.jit(lambda batch: batch.sum((1, 2))))(images).serialize())


def write_torchscript(path):
    with warnings.catch_warnings():  # torch.jit is deprecated, yet users still hold its files
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 3), torch.zeros(1, 2)), path)


@pytest.mark.quick
@pytest.mark.parametrize('name, write, kind', [
    ('notes.txt', lambda path: path.write_text('Teacher: resnet32x4, 79.42 top-1\n'),
     "text (starting 'Teacher: resnet32x4, 79.42 top-1')"),
    ('scores.csv', lambda path: path.write_text('epoch,top1\n1,70.5\n'), "text (starting 'epoch,top1')"),
    ('model.json', lambda path: path.write_text(json.dumps({'model_name': 'resnet8'})), 'JSON'),
    ('image.png', lambda path: Image.new('RGB', (4, 4)).save(path), 'a PNG image'),
    ('image.jpg', lambda path: Image.new('RGB', (4, 4)).save(path), 'a JPEG image'),
    ('weights.npy', lambda path: np.save(path, np.zeros(3)), 'a numpy array (.npy)'),
    ('weights.npz', lambda path: np.savez(path, conv=np.zeros(3), fc=np.zeros(2)),
     'a zip archive (of conv.npy, fc.npy)'),
    ('weights.pkl', lambda path: path.write_bytes(pickle.dumps({'fc': np.zeros(3)})),
     'a Python pickle that torch.save did not write (e.g. of numpy or joblib)'),
    ('model.onnx', write_onnx, 'an ONNX model'),
    ('model.jax', write_exported, 'a model exported by tools/export_student.py (jax.export, for tools/predict.py)'),
    ('scripted.pt', write_torchscript, "a TorchScript model (torch.jit.save; torch.save(torch.jit.load(FILE)."
                                       "state_dict(), 'model.pth') writes its checkpoint)"),
])
def test_a_file_that_is_not_a_pytorch_checkpoint_is_one_line_saying_what_it_looks_like(name, write, kind, tmp_path,
                                                                                       capsys):
    """Told by its first bytes before torch.load: never a traceback, nor --allow-pickle to try."""
    path = tmp_path / name
    write(path)
    for allow_pickle in ([], ['--allow-pickle']):
        assert convert_torch_weights.main([str(path), '--out', str(tmp_path / 'out'), *allow_pickle]) == 1
        assert capsys.readouterr().err.splitlines() == [
            f'error: {path} looks like {kind}, not a PyTorch checkpoint; {READS}']
    assert os.listdir(tmp_path) == [name]


@pytest.mark.quick
def test_a_directory_or_an_empty_file_is_one_line_saying_what_it_is(tmp_path, capsys):
    """A model the converter wrote (already converted), a model tools/export_student.py wrote, a
    folder of checkpoints, and an empty file."""
    folder = tmp_path / 'resnet8_vanilla'
    save_repdistiller(folder, trained_looking_model())
    converted = tmp_path / 'teacher'
    assert convert_torch_weights.main([str(folder / 'ckpt_epoch_240.pth'), '--out', str(converted)]) == 0
    exported = tmp_path / 'shipped'
    exported.mkdir()
    write_exported(exported / 'model.jax')
    (exported / 'model.json').write_text(json.dumps({'model_name': 'resnet8'}))
    (tmp_path / 'empty.pth').write_bytes(b'')
    capsys.readouterr()
    expected = {
        converted: f'{converted} is a converted model (model.json and variables/) and needs no converting; '
                   f'train with --config.teacher.checkpoint={converted}.',
        exported: f'{exported} is a model exported by tools/export_student.py (for tools/predict.py); {READS}',
        folder: f"{folder} is a directory; {READS[:-1]}, e.g. {folder / 'ckpt_epoch_240.pth'}.",
        tmp_path / 'empty.pth': f"{tmp_path / 'empty.pth'} is empty (0 bytes); {READS}"}
    for path, line in expected.items():
        assert convert_torch_weights.main([str(path), '--out', str(tmp_path / 'out')]) == 1
        assert capsys.readouterr().err.splitlines() == [f'error: {line}']
    assert not (tmp_path / 'out').exists()


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
