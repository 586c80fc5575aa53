"""README.md and the guides in docs/ cannot rot silently: every command they quote names a
program, a config file, a variant, config fields and options that exist, and every link
between them leads to a file."""
import glob
import os
import re
import shlex
import tomllib

import pytest

from conftest import REPOSITORY
from ijckd_jax.cli.config_file import describe_unknown_fields, load_config_file

pytestmark = pytest.mark.quick  # every test of this file is in the quick tier

DOCUMENTS = ['README.md', *sorted(os.path.relpath(path, REPOSITORY)
                                  for path in glob.glob(os.path.join(REPOSITORY, 'docs', '*.md')))]
PROJECT = tomllib.load(open(os.path.join(REPOSITORY, 'pyproject.toml'), 'rb'))
SCRIPTS = {name: target.split(':')[0] for name, target in PROJECT['project']['scripts'].items()}
MAIN_OPTIONS = {'--config', '--workdir', '--help', '--show_config', '--verbose'}


def quoted_commands(text):
    """Each command of the document: the lines of its ```bash blocks (continuations joined)
    and its inline `python ...` and `ijckd-...` code, split at && and ;."""
    lines = []
    for block in re.findall(r'```bash\n(.*?)```', text, re.DOTALL):
        lines += re.sub(r'\\\n\s*', ' ', block).splitlines()
    lines += re.findall(r'(?<!`)`((?:taskset -c \d+ )?(?:python |ijckd-)[^`]+)`', text)
    return [part.strip() for line in lines for part in re.split(r'&&|;', line) if part.strip()]


def program_and_arguments(command):
    """(the program of ours a command runs, its arguments), or None for another program's."""
    words = shlex.split(command, comments=True)
    if words[:2] == ['taskset', '-c']:
        words = words[3:]
    if words and words[0] in SCRIPTS:
        return SCRIPTS[words[0]].replace('.', '/') + '.py', words[1:]
    if len(words) >= 2 and words[0] == 'python' and words[1].endswith('.py'):
        return words[1], words[2:]
    if words[:3] == ['python', '-m', 'pytest']:
        return 'pytest', words[3:]
    return None


def options_of(program):
    """The --options a program of ours takes: its own argparse options, or for a tools/ script
    those of the ijckd_jax/cli module it runs."""
    source = open(os.path.join(REPOSITORY, program)).read()
    delegate = re.search(r'from ijckd_jax\.cli\.(\w+) import main', source)
    if delegate:
        source = open(os.path.join(REPOSITORY, 'ijckd_jax', 'cli', f'{delegate.group(1)}.py')).read()
    return set(re.findall(r"add_argument\(\s*'(--[\w-]+)'", source)) | {'--help'}


def check_training(arguments):
    """main.py's arguments: a config file and variant that load, fields the config has."""
    problems, config = [], None
    for index, argument in enumerate(arguments):
        option, _, value = argument.partition('=')
        if option == '--config':
            config = load_config_file(os.path.join(REPOSITORY, value or arguments[index + 1]))
        elif option.startswith('--config.'):
            problems.append(describe_unknown_fields(config, [option[len('--config.'):]]))
        elif option.startswith('--') and option not in MAIN_OPTIONS:
            problems.append(f'main.py has no option {option}')
    return [problem for problem in problems if problem]


def problems_of(command):
    """What in `command` does not exist: [] when all of it does."""
    program, arguments = program_and_arguments(command)
    if program == 'pytest':
        markers = {line.split(':')[0] for line in PROJECT['tool']['pytest']['ini_options']['markers']}
        return [f'no pytest marker {marker}' for option, marker in zip(arguments, arguments[1:])
                if option == '-m' and marker not in markers]
    if not os.path.isfile(os.path.join(REPOSITORY, program)):
        return [f'no file {program}']
    if program in ('main.py', 'ijckd_jax/cli/train.py'):
        return check_training(arguments)
    options = {argument.partition('=')[0] for argument in arguments if argument.startswith('--')}
    return [f'{program} has no option {option}' for option in sorted(options - options_of(program))]


def test_the_documents_quote_commands():
    commands = {path: [command for command in quoted_commands(open(os.path.join(REPOSITORY, path)).read())
                       if program_and_arguments(command)] for path in DOCUMENTS}
    assert len(DOCUMENTS) >= 15 and all(commands.values()), [path for path, found in commands.items() if not found]


@pytest.mark.parametrize('path', DOCUMENTS)
def test_every_command_quoted_names_what_exists(path):
    text = open(os.path.join(REPOSITORY, path)).read()
    problems = {command: problems_of(command) for command in quoted_commands(text) if program_and_arguments(command)}
    assert {command: found for command, found in problems.items() if found} == {}


@pytest.mark.parametrize('path', DOCUMENTS)
def test_every_link_leads_to_a_file(path):
    text = open(os.path.join(REPOSITORY, path)).read()
    folder = os.path.dirname(os.path.join(REPOSITORY, path))
    targets = [target.split('#')[0] for target in re.findall(r'\]\(([^)\s]+)\)', text)
               if not target.startswith(('http://', 'https://', '#'))]
    assert [target for target in targets if not os.path.exists(os.path.join(folder, target))] == []


def test_the_check_finds_what_does_not_exist():
    """The check can fail: a missing program, config, variant, field and option are found."""
    assert problems_of('python tools/nope.py') == ['no file tools/nope.py']
    assert problems_of('python tools/report.py runs/ --plots x.png') == ['tools/report.py has no option --plots']
    assert problems_of('ijckd-export runs/x --out y --formats jax') == []
    assert problems_of('python main.py --config configs/cifar_ijckd.py --workdir x --config.loss.alpha_c=1') == [
        "--config.loss.alpha_c: config.loss has no field 'alpha_c'; its fields: alpha_ce, alpha_lm, beta_fm, "
        'logit_loss, name.']
    assert problems_of('python main.py --config configs/demo.py --work-dir x') == ['main.py has no option --work-dir']
    assert problems_of('python -m pytest -q -m quik') == ['no pytest marker quik']
    for missing in ('configs/cifar_ikd.py', 'configs/cifar_teacher.py:resnet9'):
        with pytest.raises(ValueError):
            problems_of(f'python main.py --config {missing} --workdir x')


def test_every_objectives_settings_and_defaults_are_in_the_settings_table():
    """docs/objectives.md's table of settings names each objective once with every setting and
    its default, as the objective's module defines them."""
    from ijckd_jax.objectives import OBJECTIVES

    text = open(os.path.join(REPOSITORY, 'docs', 'objectives.md')).read()
    table = text.split('## Every setting, its default')[1].split('\n## ')[0]
    rows = dict(re.findall(r'^\| `(\w+)` \| ([^|]*) \|', table, re.MULTILINE))
    assert sorted(rows) == sorted(OBJECTIVES)
    for name, objective in OBJECTIVES.items():
        expected = ', '.join(f'`{setting}` {value:g}' if not isinstance(value, str) else f'`{setting}` {value}'
                             for setting, value in objective.defaults.items()) or 'none'
        assert rows[name].strip() == expected, name


def test_every_installed_command_is_named_where_the_commands_are_listed():
    for path in ('README.md', 'docs/install.md'):
        text = ' '.join(open(os.path.join(REPOSITORY, path)).read().split())
        assert [name for name in SCRIPTS if f'`{name}`' not in text] == [], path
    install = ' '.join(open(os.path.join(REPOSITORY, 'docs', 'install.md')).read().split())
    words = {7: 'seven', 8: 'eight', 9: 'nine', 10: 'ten'}
    assert f'{words[len(SCRIPTS)]} commands' in install
