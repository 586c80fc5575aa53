"""The config file a program is given (`--config FILE[:VARIANT]`) and the command-line errors
about it: loading the file, naming a file that is missing or does not import, and a
--config.FIELD the config does not have, each as one line."""
import difflib
import importlib.util
import os
import re
import traceback

import ml_collections

from ijckd_jax.errors import ConfigError


def describe_unknown_fields(config, paths):
    """For each dotted path that `config` lacks, the group it fails in and that group's fields."""
    problems = []
    for path in paths:
        node, walked = config, ['config']
        for name in path.split('.'):
            if not isinstance(node, ml_collections.ConfigDict):
                problems.append(f"--config.{path}: {'.'.join(walked)} is a value, not a group.")
                break
            if name not in node:
                problems.append(f"--config.{path}: {'.'.join(walked)} has no field '{name}'; "
                                f"its fields: {', '.join(node.keys())}.")
                break
            node = node[name]
            walked.append(name)
    return ' '.join(problems)


def where_raised(error, path):
    """' (FILE, line N)' for the last line of `path` that `error` passed through; '' if none."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f' ({path}, line {error.lineno})'
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if os.path.abspath(frame.filename) == os.path.abspath(path)]
    return f' ({path}, line {lines[-1]})' if lines else ''


def describe_exception(error, path):
    """One line: the exception's type, its message's first line and where in `path` it rose."""
    text = error.msg if isinstance(error, SyntaxError) else str(error)
    message = text.strip().splitlines()[0] if text.strip() else ''
    return f'{type(error).__name__}: {message}'.rstrip(': ') + where_raised(error, path)


def config_files():
    """The config files of this project (configs/*.py but what they share)."""
    import configs

    folder = os.path.dirname(configs.__file__)
    return sorted(name for name in os.listdir(folder) if name.endswith('.py') and name not in ('__init__.py',
                                                                                              'common.py'))


def method_row(path, variant):
    """The `--config` that trains the method a former one-method file named (configs/cifar_kd.py:
    PAIR is configs/cifar.py:kd,PAIR now), or None."""
    import configs.cifar
    import configs.imagenet

    match = re.fullmatch(r'(cifar|imagenet)_(\w+)\.py', os.path.basename(path))
    if not match:
        return None
    family, method = match.groups()
    methods = (configs.cifar if family == 'cifar' else configs.imagenet).METHODS
    # configs/cifar_teacher_classifier.py was the one file not named by its method.
    method = {'teacher_classifier': 'ce_teacher_classifier'}.get(method, method)
    if method not in methods:
        return None
    return os.path.join(os.path.dirname(path), f'{family}.py:{method}' + (f',{variant}' if variant else ''))


def missing_config_file(path, variant=''):
    """The error for a config argument that names no file, with the file that now trains a former
    one-method file's method, or else the nearest file of its folder."""
    folder = os.path.dirname(path) or '.'
    problem = 'is a directory, not a config file' if os.path.isdir(path) else 'no such file'
    siblings = sorted(name for name in os.listdir(folder) if name.endswith('.py')) if os.path.isdir(folder) else []
    close = difflib.get_close_matches(os.path.basename(path), siblings, n=1, cutoff=0.6)
    hint = f' Did you mean {os.path.join(os.path.dirname(path), close[0])}?' if close else ''
    row = method_row(path, variant)
    if row:
        hint = f' Each method is a row of one file now: --config {row}.'
    return ConfigError(f"--config {path}: {problem}.{hint} This project's config files are configs/"
                       f"{{{','.join(config_files())}}}.")


def load_config_file(argument):
    """The config that `--config FILE[:VARIANT]` names: FILE's get_config(VARIANT). A file
    that is missing or does not import, and a variant get_config refuses (an unknown model,
    setting or variant), are ConfigErrors of one line."""
    path, colon, variant = argument.partition(':')
    if not os.path.isfile(path):
        raise missing_config_file(path, variant)
    specification = importlib.util.spec_from_file_location('config_file', path)
    module = importlib.util.module_from_spec(specification)
    try:
        specification.loader.exec_module(module)
    except Exception as error:  # a config file is the user's code: any error is theirs to fix
        raise ConfigError(f'--config {path} does not import: {describe_exception(error, path)}.') from None
    if not callable(getattr(module, 'get_config', None)):
        raise ConfigError(f'--config {path} has no get_config(); a config file defines get_config(arg=None) '
                          'that returns an ml_collections.ConfigDict.')
    try:
        config = module.get_config(variant) if colon else module.get_config()
    except ValueError as error:
        raise ConfigError(f'--config {argument}: {error}') from None
    except Exception as error:
        raise ConfigError(f'--config {argument}: {describe_exception(error, path)}.') from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f'--config {path}: get_config() returned {type(config).__name__}, not an '
                          'ml_collections.ConfigDict.')
    return config
