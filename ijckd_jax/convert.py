"""PyTorch state dict → Flax variables, for every model of the zoo, by one rule.

Flax modules carry their PyTorch module's name, so a Flax variable at path
(collection, 'layer1.0', 'conv1', 'kernel') is the PyTorch entry 'layer1.0.conv1.weight'.
The layouts differ as torch.nn and flax.linen store them: conv weights [O, I, kH, kW] →
kernels [kH, kW, I, O]; linear weights [out, in] → [in, out]; BatchNorm weight/bias →
scale/bias, running_mean/var → batch_stats mean/var; num_batches_tracked is dropped.
"""
import codecs
import os
import pickle
import re
import zipfile
from typing import Dict, NamedTuple, Tuple

import numpy as np
from flax import traverse_util

from ijckd_jax.frozen_model import ARTIFACT, DESCRIPTION, METADATA, ONNX, VARIABLES, FrozenModel, save_frozen_model
from ijckd_jax.models import (IMAGENET_MODELS, MODELS, abstract_variables, check_model_name, create_model,
                              default_image_size)

IGNORED_SUFFIX = '.num_batches_tracked'
TOLERANCE = 1e-4  # largest |Δ logit| --verify allows between PyTorch and Flax
WRAPPER_KEYS = ('model', 'state_dict', 'model_state_dict')

EXPECTED = 'the converter reads a PyTorch checkpoint, a .pth/.pt file that torch.save wrote'
HEAD_BYTES = 4096  # what a file's kind is told from
# torch.save's legacy format pickles torch.serialization.MAGIC_NUMBER first, in any protocol.
TORCH_LEGACY_STARTS = tuple(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=protocol)
                            for protocol in range(pickle.HIGHEST_PROTOCOL + 1))
ZIP_START = b'PK\x03\x04'  # a zip archive's first local file header; torch.save's format is one
PROTO_OPCODE = 0x80  # starts a pickle of protocol 2 or later, its protocol next
ONNX_START = b'\x08'  # an ONNX ModelProto starts with its field 1, ir_version, a varint
SIGNATURES = {b'\x89PNG\r\n\x1a\n': 'a PNG image', b'\xff\xd8\xff': 'a JPEG image',
              b'\x93NUMPY': 'a numpy array (.npy)', b'\x89HDF\r\n\x1a\n': 'an HDF5 file (e.g. Keras weights)',
              b'\x1f\x8b': 'gzip-compressed data'}


class ConversionError(ValueError):
    """The checkpoint cannot become the requested model; the message says why and what to do."""


class TorchEntry(NamedTuple):
    """Where one PyTorch state-dict entry goes in the Flax variables."""
    flax_path: Tuple[str, ...]
    torch_shape: Tuple[int, ...]


def torch_key(flax_path):
    """The PyTorch state-dict key of a Flax variable path, and the torch layout of its shape."""
    collection, *modules, leaf = flax_path
    suffix = {('params', 'kernel'): 'weight', ('params', 'scale'): 'weight',
              ('params', 'bias'): 'bias', ('batch_stats', 'mean'): 'running_mean',
              ('batch_stats', 'var'): 'running_var'}[(collection, leaf)]
    return '.'.join(modules + [suffix])


def to_torch_shape(flax_shape):
    if len(flax_shape) == 4:
        height, width, inputs, outputs = flax_shape
        return (outputs, inputs, height, width)
    if len(flax_shape) == 2:
        return tuple(reversed(flax_shape))
    return tuple(flax_shape)


def to_flax_array(array):
    if array.ndim == 4:
        return np.transpose(array, (2, 3, 1, 0))
    if array.ndim == 2:
        return array.T
    return array


def expected_entries(variables) -> Dict[str, TorchEntry]:
    """Every state-dict key that Flax variables (or their shapes) need, with its PyTorch shape."""
    flat = traverse_util.flatten_dict(variables)
    return {torch_key(path): TorchEntry(path, to_torch_shape(leaf.shape))
            for path, leaf in flat.items()}


def strip_wrappers(checkpoint):
    """The state dict inside the formats users have: plain, {'model': ...} and DataParallel's 'module.'."""
    if not isinstance(checkpoint, dict):
        raise ConversionError(f'Expected a state dict or a dict holding one, got {type(checkpoint).__name__}.')
    for key in WRAPPER_KEYS:
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    arrays = {key: value for key, value in checkpoint.items() if hasattr(value, 'shape')}
    if not arrays:
        raise ConversionError('No tensors found in the checkpoint; its top-level keys are '
                              f"{sorted(map(str, checkpoint))[:20]}. Expected a state dict or "
                              f"a dict holding one under one of {list(WRAPPER_KEYS)}.")
    return {re.sub(r'^module\.', '', key): value for key, value in arrays.items()}


def read_torch_checkpoint(path, allow_pickle=False) -> Dict[str, np.ndarray]:
    """The state dict of a PyTorch file as float32 numpy arrays; a file of another kind is
    refused by its first bytes, before torch.load, with what it looks like."""
    path = os.fspath(path)
    check_torch_checkpoint(path)
    import torch

    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=not allow_pickle)
    except pickle.UnpicklingError as error:
        # Weights-only torch.load names the class it refused so; any other unpickling error is damage.
        refused = re.search(r'Unsupported global: GLOBAL (\S+)', str(error))
        if allow_pickle or not refused:
            raise damaged(path, error) from error
        raise ConversionError(
            f'{path} holds Python objects besides tensors (e.g. {refused.group(1)}), which torch.load '
            'refuses to unpickle safely. If you trust the file, pass --allow-pickle.') from error
    except (AttributeError, ImportError) as error:  # only with --allow-pickle: a class of the training code
        raise ConversionError(f'{path} holds Python objects whose class cannot be imported here ({error}); '
                              'where the model was trained, save its state dict alone with '
                              "torch.save(model.state_dict(), 'model.pth').") from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise damaged(path, error) from error
    return {key: value.detach().cpu().float().numpy()
            for key, value in strip_wrappers(checkpoint).items()}


def damaged(path, error) -> ConversionError:
    """A file in one of torch.save's formats that torch.load cannot read, with the first sentence
    of torch's reason (in weights-only mode, the unpickler's, after torch's advice)."""
    reason = str(error).split('WeightsUnpickler error:')[-1].strip().split('\n')[0].split('. ')[0]
    reason = reason.rstrip('.') or type(error).__name__
    return ConversionError(f'{path} is a truncated or damaged PyTorch checkpoint (torch.load: {reason}); '
                           'copy or download it again.')


def check_torch_checkpoint(path) -> None:
    """Refuses, saying what it looks like, a path that does not start as one of torch.save's two
    formats: its zip archive with <name>/data.pkl first, or the legacy pickle stream whose first
    object is torch's magic number."""
    if os.path.isdir(path):
        raise ConversionError(describe_directory(path))
    if not os.path.isfile(path):
        raise ConversionError(f'Checkpoint {path} does not exist or is not a file.')
    try:
        with open(path, 'rb') as file:
            head = file.read(HEAD_BYTES)
    except OSError as error:
        raise ConversionError(f'Checkpoint {path} cannot be read: {error.strerror}.') from error
    if not head:
        raise ConversionError(f'{path} is empty (0 bytes); {EXPECTED}.')
    if head.startswith(TORCH_LEGACY_STARTS) or (head.startswith(ZIP_START) and
                                                first_zip_entry(head).endswith('/data.pkl')):
        return
    raise ConversionError(f'{path} looks like {describe_file(path, head)}, not a PyTorch checkpoint; {EXPECTED}.')


def first_zip_entry(head) -> str:
    """The name in a zip archive's first local file header (readable even where the archive is truncated)."""
    name_length = int.from_bytes(head[26:28], 'little')
    return head[30:30 + name_length].decode('utf-8', 'replace')


def describe_directory(path) -> str:
    """Why a directory is not converted: an exported model, a model already converted, or any other."""
    names = set(os.listdir(path))
    if DESCRIPTION in names and names & {ARTIFACT, ONNX}:
        return f'{path} is a model exported by tools/export_student.py (for tools/predict.py); {EXPECTED}.'
    if METADATA in names and VARIABLES in names:
        return (f'{path} is a converted model ({METADATA} and {VARIABLES}/) and needs no converting; '
                f'train with --config.teacher.checkpoint={path}.')
    checkpoints = sorted(name for name in names if name.endswith(('.pth', '.pt')))
    example = f', e.g. {os.path.join(path, checkpoints[0])}' if checkpoints else ''
    return f'{path} is a directory; {EXPECTED}{example}.'


def describe_file(path, head) -> str:
    """What a file that is not a PyTorch checkpoint looks like, in a few words, from its name and first bytes."""
    if os.path.basename(path) == ARTIFACT:
        return 'a model exported by tools/export_student.py (jax.export, for tools/predict.py)'
    for signature, kind in SIGNATURES.items():
        if head.startswith(signature):
            return kind
    if head.startswith(ZIP_START):
        return describe_zip(path)
    if path.endswith('.onnx') and head.startswith(ONNX_START):
        return 'an ONNX model'
    if head[8:10] == b'{"':  # safetensors: the length of its JSON header, then the header
        return 'safetensors weights'
    if len(head) > 1 and head[0] == PROTO_OPCODE and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
        return 'a Python pickle that torch.save did not write (e.g. of numpy or joblib)'
    text = as_text(head)
    if text is None:
        return f'binary data (starting {head[:8].hex(" ")})'
    if text.lstrip()[:1] in ('{', '['):
        return 'JSON'
    line = next((line for line in text.splitlines() if line.strip()), '')
    return f'text (starting {line[:60]!r})' if line else 'blank text'


def describe_zip(path) -> str:
    """A zip archive that torch.save did not write: TorchScript's, or any other by its first entries."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return 'a truncated or damaged zip archive'
    if any(name.endswith('/constants.pkl') for name in names):
        return ("a TorchScript model (torch.jit.save; torch.save(torch.jit.load(FILE).state_dict(), "
                "'model.pth') writes its checkpoint)")
    return f"a zip archive (of {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"


def as_text(head):
    """The first bytes as text where they are UTF-8 without control characters; else None."""
    try:
        text = codecs.getincrementaldecoder('utf-8')().decode(head)  # a character cut at the end is no error
    except UnicodeDecodeError:
        return None
    if any(ord(character) < 32 and character not in '\t\n\r\f' for character in text):
        return None
    return text


def infer_model_name(path, state_dict) -> str:
    """The architecture named in the folder (RepDistiller's <model>_vanilla/ckpt_epoch_240.pth)
    or else in the file name (cifar100_resnet56-f2eff4c8.pt); the longest name that matches.
    Where neither names one, the error names the model the state dict's keys and shapes fit."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    stem = os.path.splitext(os.path.basename(path))[0]
    for text in (folder, stem):
        found = [name for name in MODELS
                 if re.search(rf'(^|[^A-Za-z0-9]){re.escape(name)}($|[^A-Za-z0-9])', text)]
        if found:
            return max(found, key=len)
    fit = fitting_model(state_dict)
    hint = (f'its keys and shapes fit {fit[0]}: pass --arch {fit[0]}' if fit else
            f"its keys and shapes fit no model of the zoo; pass --arch, one of: {', '.join(MODELS)}")
    raise ConversionError(f"Cannot infer the architecture from the name '{folder}/{stem}'; {hint}.")


def infer_num_classes(state_dict, model_name) -> int:
    """The class count from the classifier's bias; without one, the data set's usual count
    (100 for CIFAR, 1000 for ImageNet), so that the mismatch report still lists every key."""
    classifier = create_model(model_name).classifier_name
    bias = state_dict.get(f'{classifier}.bias')
    if bias is None or bias.ndim != 1:
        return 1000 if model_name in IMAGENET_MODELS else 100
    return int(bias.shape[0])


def natural_order(key):
    """Sorts 'layer1.2' before 'layer1.10', as the modules come in the network."""
    return [(0, int(part), '') if part.isdigit() else (1, 0, part) for part in key.split('.')]


def mismatches(state_dict, expected):
    """The missing keys, the unexpected keys and the keys of another shape, in network order."""
    present = {key for key in state_dict if not key.endswith(IGNORED_SUFFIX)}
    missing = sorted((key for key in expected if key not in present), key=natural_order)
    unexpected = sorted(present - expected.keys(), key=natural_order)
    wrong_shape = sorted((key for key in expected if key in present
                          and tuple(state_dict[key].shape) != expected[key].torch_shape), key=natural_order)
    return missing, unexpected, wrong_shape


def describe_mismatches(state_dict, expected, description) -> str:
    """Every missing key, unexpected key and shape mismatch, by name and shape; '' when none."""
    missing, unexpected, wrong_shape = mismatches(state_dict, expected)
    lines = []
    if missing:
        lines.append(f'{len(missing)} missing keys (needed by {description}):')
        lines += [f'  {key} {list(expected[key].torch_shape)}' for key in missing]
    if unexpected:
        lines.append(f'{len(unexpected)} unexpected keys (not in {description}):')
        lines += [f'  {key} {list(state_dict[key].shape)}' for key in unexpected]
    if wrong_shape:
        lines.append(f'{len(wrong_shape)} shape mismatches (checkpoint vs {description}):')
        lines += [f'  {key} {list(state_dict[key].shape)} vs {list(expected[key].torch_shape)}'
                  for key in wrong_shape]
    return '\n'.join(lines)


def summarize_mismatches(state_dict, expected) -> str:
    """The mismatches in one phrase: each kind's count and first key, by name and shape."""
    missing, unexpected, wrong_shape = mismatches(state_dict, expected)
    parts = []
    if missing:
        parts.append(f'{len(missing)} missing keys, e.g. {missing[0]} {list(expected[missing[0]].torch_shape)}')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected keys, e.g. {unexpected[0]} '
                     f'{list(state_dict[unexpected[0]].shape)}')
    if wrong_shape:
        key = wrong_shape[0]
        parts.append(f'{len(wrong_shape)} shape mismatches, e.g. {key} {list(state_dict[key].shape)} vs '
                     f'{list(expected[key].torch_shape)}')
    return '; '.join(parts)


def fitting_model(state_dict):
    """(name, class count) of the first model of the zoo whose every key and shape the state
    dict has, None if none does. Only the models with the state dict's classifier are built."""
    for name in MODELS:
        if f'{create_model(name).classifier_name}.weight' in state_dict:
            num_classes = infer_num_classes(state_dict, name)
            if not any(mismatches(state_dict, expected_entries(abstract_variables(name, num_classes)))):
                return name, num_classes
    return None


def state_dict_to_variables(state_dict, variables, description):
    """Flax variables shaped like `variables` (arrays or shapes) from a PyTorch state dict.

    Raises ConversionError listing every mismatch before anything is converted.
    """
    expected = expected_entries(variables)
    problems = describe_mismatches(state_dict, expected, description)
    if problems:
        raise ConversionError(f'The checkpoint does not match {description}.\n{problems}')
    # Copies, so that the variables never alias the caller's (possibly torch-shared) memory.
    flat = {entry.flax_path: np.ascontiguousarray(to_flax_array(np.array(state_dict[key], np.float32)))
            for key, entry in expected.items()}
    return traverse_util.unflatten_dict(flat)


def convert_state_dict(state_dict, model_name, num_classes=None):
    """Flax variables {'params', 'batch_stats'} for `model_name` from a PyTorch state dict. A
    state dict that fits another model of the zoo, or another class count, is refused in one
    line that names the --arch or --num-classes it fits."""
    check_model_name(model_name)
    if num_classes is None:
        num_classes = infer_num_classes(state_dict, model_name)
    variables = abstract_variables(model_name, num_classes)
    expected = expected_entries(variables)
    if any(mismatches(state_dict, expected)):
        refuse_if_another_fits(state_dict, expected, model_name, num_classes)
    return state_dict_to_variables(state_dict, variables, f'{model_name} with {num_classes} classes')


def refuse_if_another_fits(state_dict, expected, model_name, num_classes):
    """Where the state dict fits a model of the zoo other than model_name with num_classes, the
    one-line error that names the arguments it fits, instead of a listing of every key."""
    fit = fitting_model(state_dict)
    if fit is None:
        return
    arguments = []
    if fit[0] != model_name:
        arguments.append(f'--arch {fit[0]}')
    if fit[1] != num_classes:
        arguments.append(f'--num-classes {fit[1]}')
    raise ConversionError(f'The checkpoint does not fit {model_name} with {num_classes} classes '
                          f'({summarize_mismatches(state_dict, expected)}); its keys and shapes fit {fit[0]} '
                          f"with {fit[1]} classes: pass {' '.join(arguments)}.")


def largest_logit_difference(state_dict, model_name, variables, batch_size=4, seed=0) -> float:
    """Runs the PyTorch and the Flax model on one random batch in eval mode; max |Δ logit|."""
    import torch
    from ijckd_jax.torch_models import create_torch_model

    num_classes = variables['params'][create_model(model_name).classifier_name]['bias'].shape[0]
    torch_model = create_torch_model(model_name, num_classes)
    torch_model.load_state_dict({key: torch.from_numpy(value) for key, value in state_dict.items()
                                 if not key.endswith(IGNORED_SUFFIX)}, strict=False)
    size = default_image_size(model_name)
    images = np.random.default_rng(seed).standard_normal((batch_size, 3, size, size), np.float32)
    with torch.no_grad():
        torch_logits = torch_model(torch.from_numpy(images)).numpy()
    flax_model = create_model(model_name, num_classes)
    flax_logits = flax_model.apply(variables, np.transpose(images, (0, 2, 3, 1))).logits
    return float(np.abs(np.asarray(flax_logits) - torch_logits).max())


def convert_checkpoint(checkpoint, out, arch=None, num_classes=None, verify=False, allow_pickle=False, record=None):
    """Writes the saved Flax model of a PyTorch checkpoint to `out`, printing what matched and,
    with `verify`, the largest logit difference, which model.json records beside `record`."""
    if arch:
        check_model_name(arch)
    state_dict = read_torch_checkpoint(checkpoint, allow_pickle)
    model_name = arch or infer_model_name(checkpoint, state_dict)
    variables = convert_state_dict(state_dict, model_name, num_classes)
    num_classes = infer_num_classes(state_dict, model_name)
    print(f'{checkpoint}: {len(state_dict)} entries match {model_name} with {num_classes} classes.')
    record = dict(record or {})
    if verify:
        difference = largest_logit_difference(state_dict, model_name, variables)
        print(f'largest absolute logit difference, PyTorch vs Flax: {difference:.3e}')
        if not difference <= TOLERANCE:
            raise ConversionError(f'Verification failed: {difference:.3e} > {TOLERANCE}.')
        record['verify_max_abs_logit_difference'] = difference
    save_frozen_model(out, FrozenModel(model_name, num_classes, variables), source=os.path.abspath(checkpoint),
                      record=record)
