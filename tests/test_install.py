"""The installed package: console scripts that are the checkout's programs, config files that
import configs.common from anywhere, main.py dispatching on config.program, no sys.path edits."""
import glob
import os
import re
import subprocess
import sys

import pytest

from conftest import REPOSITORY
from test_report import write_run

BIN = os.path.dirname(sys.executable)


def run(command, cwd):
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)


def test_the_report_command_is_the_report_tool(tmp_path):
    write_run(tmp_path / 'runs' / 'a', seed=0)
    write_run(tmp_path / 'runs' / 'b', seed=1, best_top1=77.0)
    command = run([os.path.join(BIN, 'ijckd-report'), str(tmp_path / 'runs')], cwd=tmp_path)
    tool = run([sys.executable, os.path.join(REPOSITORY, 'tools', 'report.py'), str(tmp_path / 'runs')],
               cwd=tmp_path)
    assert command.returncode == tool.returncode == 0, command.stderr + tool.stderr
    assert command.stdout == tool.stdout and '76.50 ± 0.71' in command.stdout


@pytest.mark.quick
def test_every_command_is_installed_and_answers(tmp_path):
    """Each --help starts with the usage, and its description (the paragraph after it) is whole,
    a sentence that ends, even where the docstring it comes from wraps it."""
    for name in ('ijckd-convert', 'ijckd-report', 'ijckd-plot', 'ijckd-predict', 'ijckd-prepare'):
        result = run([os.path.join(BIN, name), '--help'], cwd=tmp_path)
        assert result.returncode == 0 and result.stdout.startswith(f'usage: {name}'), name
        description = result.stdout.split('\n\n')[1]
        assert description.endswith('.'), (name, description)


@pytest.mark.quick
def test_the_output_paths_of_the_readme_are_ignored_by_git():
    """Converted teachers, runs and shipped students written where the README says stay out of git."""
    readme = open(os.path.join(REPOSITORY, 'README.md')).read()
    outputs = sorted(set(re.findall(r'--(?:out|workdir)[ =]([A-Za-z][\w./-]*)', readme)))
    result = run(['git', 'check-ignore', *outputs], cwd=REPOSITORY)
    assert {'runs/ijckd', 'shipped/ijckd', 'teachers/resnet32x4'} <= set(outputs)
    assert result.stdout.split() == outputs, result.stderr


def test_help_shows_the_examples_and_the_flags(tmp_path):
    """main.py and ijckd-train --help list the --config and --workdir flags (not just
    --helpfull); main.py's shows its examples as a shell takes them (continued by a backslash)."""
    outputs = {}
    for name, command in (('main.py', [sys.executable, os.path.join(REPOSITORY, 'main.py')]),
                          ('ijckd-train', [os.path.join(BIN, 'ijckd-train')])):
        result = run([*command, '--help'], cwd=tmp_path)  # absl's --help exits with status 1
        assert result.returncode == 1 and result.stderr == '', result.stderr
        assert '  --config: A config file' in result.stdout and '  --workdir: Where checkpoints' in result.stdout
        outputs[name] = result.stdout
    assert 'resnet8x4 --workdir runs/ijckd \\\n        --config.teacher.checkpoint=' in outputs['main.py']


def test_a_config_file_outside_the_working_directory_imports_configs_common(tmp_path):
    """The train command, run away from the checkout, loads configs/cifar_ijckd.py (which
    imports configs.common) and names an unknown field with the valid ones."""
    result = run([os.path.join(BIN, 'ijckd-train'), '--config',
                  os.path.join(REPOSITORY, 'configs', 'cifar_ijckd.py'), '--workdir', str(tmp_path / 'run'),
                  '--config.loss.alpha_c=0.2'], cwd=tmp_path)
    assert result.returncode != 0
    assert "config.loss has no field 'alpha_c'; its fields: alpha_ce, alpha_lm" in result.stderr
    assert not (tmp_path / 'run').exists()


def test_main_dispatches_on_what_the_config_says_it_is(tmp_path):
    result = run([sys.executable, os.path.join(REPOSITORY, 'main.py'), '--config',
                  os.path.join(REPOSITORY, 'configs', 'cifar_teacher.py:resnet8'), '--workdir',
                  str(tmp_path / 'run'), '--config.program=evaluate'], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: config.program='evaluate' is not a program; valid programs: train, demo."
    assert not (tmp_path / 'run').exists()


@pytest.mark.quick
def test_nothing_edits_sys_path():
    sources = [path for pattern in ('*.py', 'ijckd_jax/**/*.py', 'configs/*.py', 'tools/*.py',
                                    'bench/*.py', 'tests/*.py')
               for path in glob.glob(os.path.join(REPOSITORY, pattern), recursive=True)]
    editing = [path for path in sources
               if any(f'sys.path.{verb}(' in open(path).read() for verb in ('insert', 'append'))]
    assert len(sources) > 60 and editing == []
