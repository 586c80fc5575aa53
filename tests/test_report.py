"""The results report: finding runs, statistics over seeds, the paper column, errors, the CLI."""
import json
import os
import subprocess
import sys

import pytest

from ijckd_jax import report
from ijckd_jax.run_plot import read_run_history

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IJCKD_DEFAULTS = {'name': 'ijckd', 'alpha_ce': 1.0, 'alpha_lm': 1.0, 'beta_fm': 0.0, 'logit_loss': 'mse'}
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def write_run(directory, best_top1=76.0, last_top1=75.5, seed=0, objective='ijckd', loss=None,
              connector='1x1', teacher='resnet32x4', student='resnet8x4', dataset='cifar100', epochs=3,
              config=None):
    """A finished run's directory with summary.json and history.json; returns its path."""
    os.makedirs(directory)
    history = [{'epoch': epoch, 'step': 781 * epoch, 'top1': last_top1 - (epochs - epoch), 'top5': 90.0}
               for epoch in range(1, epochs + 1)]
    summary = {'dataset': dataset, 'objective': objective,
               'loss': dict(IJCKD_DEFAULTS) if loss is None else loss, 'connector': connector,
               'student': student, 'teacher': teacher, 'seed': seed, 'best_top1': best_top1, 'best_top5': 90.0,
               'best_epoch': epochs, 'best_step': 781 * epochs, 'best_checkpoint': f'checkpoints/{781 * epochs}',
               'last_top1': last_top1, 'last_top5': 90.0, 'epochs': epochs,
               'teacher_top1': 79.4 if teacher else None}
    if config is not None:  # runs record their config's math fields since the report groups by them
        summary['config'] = {**config, 'seed': seed}
    with open(os.path.join(directory, 'summary.json'), 'w') as file:
        json.dump(summary, file)
    with open(os.path.join(directory, 'history.json'), 'w') as file:
        json.dump(history, file)
    return str(directory)


@pytest.mark.quick
def test_a_history_with_epochs_counted_from_0_is_read_counted_from_1(tmp_path):
    """history.json written before epochs were counted from 1, as the console counts them (its
    first entry is epoch 0), reads as one written now, by the report and by the run's plot."""
    new = write_run(tmp_path / 'new')
    old = write_run(tmp_path / 'old')
    history = json.loads((tmp_path / 'old' / 'history.json').read_text())
    (tmp_path / 'old' / 'history.json').write_text(json.dumps([{**entry, 'epoch': entry['epoch'] - 1}
                                                               for entry in history]))
    assert report.read_history(old) == report.read_history(new) == [(1, 73.5), (2, 74.5), (3, 75.5)]
    assert [entry['epoch'] for entry in read_run_history(old)] == [1, 2, 3]


def table_rows(paths):
    """The data lines of the printed table, split into stripped cells."""
    table = report.format_table(report.summarize_settings(report.load_runs(paths)))
    return [[cell.strip() for cell in line.strip('|').split('|')] for line in table.splitlines()[2:]]


def run_cli(*arguments):
    return subprocess.run([sys.executable, os.path.join(REPOSITORY, 'tools', 'report.py'), *arguments],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.quick
def test_the_mean_and_sample_std_over_seeds(tmp_path):
    for seed, (best, last) in enumerate([(70.0, 69.0), (72.0, 70.0), (74.0, 74.0)]):
        write_run(tmp_path / f'seed{seed}', best_top1=best, last_top1=last, seed=seed)
    [row] = table_rows([str(tmp_path)])
    assert row == ['cifar100', 'ijckd', 'resnet32x4 → resnet8x4', '3', '72.00 ± 2.00', '71.00 ± 2.65',
                   '76.52']


@pytest.mark.quick
def test_one_seed_prints_the_mean_alone(tmp_path):
    write_run(tmp_path / 'run', best_top1=71.234, last_top1=70.5)
    [row] = table_rows([str(tmp_path / 'run')])
    assert row[3:6] == ['1', '71.23', '70.50']


@pytest.mark.quick
def test_the_paper_column_matches_settings_exactly(tmp_path):
    write_run(tmp_path / 'default', loss={'name': 'ijckd'})  # omitted settings are the defaults
    write_run(tmp_path / 'alpha_ce', loss={**IJCKD_DEFAULTS, 'alpha_ce': 0.2})
    write_run(tmp_path / 'unknown', loss={**IJCKD_DEFAULTS, 'alpha_ce': 0.3})
    write_run(tmp_path / 'cosine', loss={**IJCKD_DEFAULTS, 'alpha_lm': 10, 'logit_loss': 'cosine'})
    write_run(tmp_path / 'connector', connector='1x1-3x3-1x1')
    write_run(tmp_path / 'wrn', teacher='wrn_40_2', student='wrn_40_1')
    write_run(tmp_path / 'imagenet', dataset='imagenet2012')
    write_run(tmp_path / 'kd', objective='kd', connector=None,
              loss={'name': 'kd', 'ce_weight': 0.1, 'kd_weight': 0.9, 'temperature': 4.0})
    write_run(tmp_path / 'vanilla', objective='ce', loss={'name': 'ce'}, connector=None, teacher=None)
    paper = {(row[0], row[1], row[2]): row[6] for row in table_rows([str(tmp_path)])}
    assert paper == {
        ('cifar100', 'ijckd', 'resnet32x4 → resnet8x4'): '76.52',
        ('cifar100', 'ijckd (alpha_ce=0.2)', 'resnet32x4 → resnet8x4'): '76.61',
        ('cifar100', 'ijckd (alpha_ce=0.3)', 'resnet32x4 → resnet8x4'): '—',
        ('cifar100', 'ijckd (alpha_lm=10, logit_loss=cosine)', 'resnet32x4 → resnet8x4'): '76.86',
        ('cifar100', 'ijckd (connector 1x1-3x3-1x1)', 'resnet32x4 → resnet8x4'): '77.76',
        ('cifar100', 'ijckd', 'wrn_40_2 → wrn_40_1'): '75.14',
        ('imagenet2012', 'ijckd', 'resnet32x4 → resnet8x4'): '—',
        ('cifar100', 'kd', 'resnet32x4 → resnet8x4'): '73.33',
        ('cifar100', 'ce', 'resnet8x4'): '72.50',
    }


@pytest.mark.quick
def test_the_other_methods_get_their_sources_published_numbers(tmp_path):
    """As their config files set them up: RepDistiller's README for FitNet and CRD, mdistiller's
    for DKD with its per-pair β; DKD at another β is not the published setting."""
    from configs import cifar_crd, cifar_dkd, cifar_fitnet

    def write(name, module, pair, **changes):
        config = module.get_config(pair)
        teacher, student = pair.split('-')
        write_run(tmp_path / name, objective=config.loss.name, connector=None, teacher=teacher, student=student,
                  loss={**config.loss.to_dict(), **changes})

    write('fitnet', cifar_fitnet, 'resnet32x4-resnet8x4')
    write('crd', cifar_crd, 'vgg13-MobileNetV2')
    write('dkd', cifar_dkd, 'resnet56-resnet20')
    write('dkd_beta', cifar_dkd, 'resnet56-resnet20', beta=8.0)
    paper = {(row[1], row[2]): row[6] for row in table_rows([str(tmp_path)])}
    assert paper == {('fitnet', 'resnet32x4 → resnet8x4'): '73.50', ('crd', 'vgg13 → MobileNetV2'): '69.73',
                     ('dkd (beta=2)', 'resnet56 → resnet20'): '71.97', ('dkd', 'resnet56 → resnet20'): '—'}


@pytest.mark.quick
def test_grouping_separates_settings_and_sorts_rows(tmp_path):
    write_run(tmp_path / 'a0', seed=0, best_top1=76.0)
    write_run(tmp_path / 'a1', seed=1, best_top1=77.0)
    write_run(tmp_path / 'b0', seed=0, best_top1=70.0, loss={**IJCKD_DEFAULTS, 'alpha_ce': 0.2})
    write_run(tmp_path / 'c0', seed=0, best_top1=60.0, connector='1x1-1x1')
    write_run(tmp_path / 'd0', seed=0, best_top1=50.0, teacher='wrn_40_2', student='wrn_40_1')
    write_run(tmp_path / 'e0', seed=0, best_top1=40.0, objective='simkd', loss={'name': 'simkd'})
    write_run(tmp_path / 'f0', seed=0, best_top1=72.0, objective='ce', loss={'name': 'ce'},
              connector=None, teacher=None, student='resnet8x4')
    rows = table_rows([str(tmp_path)])
    assert [(row[1], row[2], row[3], row[4]) for row in rows] == [
        ('ce', 'resnet8x4', '1', '72.00'),  # no teacher sorts first
        ('ijckd', 'resnet32x4 → resnet8x4', '2', '76.50 ± 0.71'),
        ('ijckd (alpha_ce=0.2)', 'resnet32x4 → resnet8x4', '1', '70.00'),
        ('ijckd (connector 1x1-1x1)', 'resnet32x4 → resnet8x4', '1', '60.00'),
        ('simkd', 'resnet32x4 → resnet8x4', '1', '40.00'),
        ('ijckd', 'wrn_40_2 → wrn_40_1', '1', '50.00'),
    ]


@pytest.mark.quick
def test_runs_of_different_configs_never_share_a_row(tmp_path):
    """Eighteen runs that differ in more than their seed are as many rows as configs, each
    labelled by the fields that tell it from its twins; only seeds are averaged."""
    base = {'optimizer.learning_rate': 0.05, 'optimizer.decay_epochs': [150, 180, 210], 'num_classes': 100}
    for rate in (0.05, 0.1):
        for epochs in ([150, 180, 210], [30, 60, 90]):
            for seed in range(3):
                config = {**base, 'optimizer.learning_rate': rate, 'optimizer.decay_epochs': epochs}
                write_run(tmp_path / f'{rate}_{epochs[0]}_{seed}', seed=seed, best_top1=70 + seed, config=config)
    write_run(tmp_path / 'old', seed=5)  # written before runs recorded their config
    rows = table_rows([str(tmp_path)])
    assert [(row[1], row[3]) for row in rows] == [
        ('ijckd [config not recorded]', '1'),
        ('ijckd [optimizer.decay_epochs=[150, 180, 210], optimizer.learning_rate=0.05]', '3'),
        ('ijckd [optimizer.decay_epochs=[150, 180, 210], optimizer.learning_rate=0.1]', '3'),
        ('ijckd [optimizer.decay_epochs=[30, 60, 90], optimizer.learning_rate=0.05]', '3'),
        ('ijckd [optimizer.decay_epochs=[30, 60, 90], optimizer.learning_rate=0.1]', '3')]
    assert {row[4] for row in rows[1:]} == {'71.00 ± 1.00'}


def test_nested_directories_are_found_once(tmp_path):
    write_run(tmp_path / 'sweep' / 'alpha' / 'seed0', seed=0)
    write_run(tmp_path / 'sweep' / 'beta' / 'deeper' / 'seed1', seed=1)
    write_run(tmp_path / 'other', seed=2)
    os.makedirs(tmp_path / 'sweep' / 'alpha' / 'seed0' / 'checkpoints' / '10')
    runs = report.load_runs([str(tmp_path / 'sweep'), str(tmp_path), str(tmp_path / 'other')])
    assert sorted(run.seed for run in runs) == [0, 1, 2]
    assert report.duplicate_seeds(runs) == []


def test_a_seed_in_two_directories_is_warned_about(tmp_path):
    write_run(tmp_path / 'first', seed=0)
    write_run(tmp_path / 'second', seed=0)
    [warning] = report.duplicate_seeds(report.load_runs([str(tmp_path)]))
    assert 'seed 0' in warning and 'first' in warning and 'second' in warning


@pytest.mark.quick
def test_a_missing_or_empty_directory_is_an_error_naming_it(tmp_path):
    with pytest.raises(report.ReportError, match='nowhere.*does not exist'):
        report.load_runs([str(tmp_path / 'nowhere')])
    os.makedirs(tmp_path / 'unfinished')
    (tmp_path / 'unfinished' / 'history.json').write_text('[]')
    with pytest.raises(report.ReportError, match='unfinished holds no summary.json'):
        report.load_runs([str(tmp_path / 'unfinished')])


@pytest.mark.parametrize('content, problem', [
    ('{"dataset": "cifar100", ', 'not valid JSON'),
    ('[1, 2]', 'expected a JSON object'),
    ('{"dataset": "cifar100", "objective": "ijckd"}', 'lacks loss, connector, student'),
])
def test_a_malformed_summary_is_an_error_naming_the_file(tmp_path, content, problem):
    write_run(tmp_path / 'good')
    os.makedirs(tmp_path / 'bad')
    (tmp_path / 'bad' / 'summary.json').write_text(content)
    with pytest.raises(report.ReportError, match='bad.summary.json') as error:
        report.load_runs([str(tmp_path)])
    assert problem in str(error.value)


def test_a_summary_with_a_wrong_value_is_an_error_naming_the_field(tmp_path):
    write_run(tmp_path / 'run', best_top1=None)
    with pytest.raises(report.ReportError, match=r'run.summary.json is malformed: best_top1'):
        report.load_runs([str(tmp_path)])


@pytest.mark.quick
def test_the_cli_prints_the_table_and_plots(tmp_path):
    write_run(tmp_path / 'runs' / 'seed0', best_top1=70.0, seed=0)
    write_run(tmp_path / 'runs' / 'seed1', best_top1=74.0, seed=1, epochs=5)
    write_run(tmp_path / 'runs' / 'alpha', loss={**IJCKD_DEFAULTS, 'alpha_ce': 0.2})
    plot = tmp_path / 'accuracy.png'
    result = run_cli(str(tmp_path / 'runs'), '--plot', str(plot))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [cell.strip() for cell in lines[0].strip('|').split('|')] == [
        'dataset', 'method', 'teacher → student', 'seeds', 'best top-1', 'last top-1', 'paper']
    assert set(lines[1]) <= set('|-:')
    assert '| 72.00 ± 2.83 |' in lines[2] and lines[2].rstrip().endswith('| 76.52 |')
    assert 'ijckd (alpha_ce=0.2)' in lines[3] and lines[3].rstrip().endswith('| 76.61 |')
    assert len(lines) == 4
    assert plot.read_bytes()[:8] == PNG_SIGNATURE and plot.stat().st_size > 1000


def test_the_cli_exits_2_naming_bad_input(tmp_path):
    result = run_cli(str(tmp_path / 'missing'))
    assert result.returncode == 2
    assert 'missing does not exist' in result.stderr and result.stdout == ''
    write_run(tmp_path / 'run')
    (tmp_path / 'run' / 'history.json').write_text('{"epoch": 0}')
    result = run_cli(str(tmp_path / 'run'), '--plot', str(tmp_path / 'accuracy.png'))
    assert result.returncode == 2 and 'history.json is malformed' in result.stderr
    assert not (tmp_path / 'accuracy.png').exists()


def write_table(directory, best_top1s):
    """A comparison table's workdir: table.json and, per method, a run for each seed given a
    best top-1 (None: not finished)."""
    seeds = range(len(next(iter(best_top1s.values()))))
    os.makedirs(directory)
    with open(os.path.join(directory, 'table.json'), 'w') as file:
        json.dump({'methods': list(best_top1s), 'seeds': list(seeds), 'config': {}}, file)
    for method, values in best_top1s.items():
        settings = dict(objective=method, loss=dict(IJCKD_DEFAULTS) if method == 'ijckd' else {'name': method},
                        connector='1x1' if method == 'ijckd' else None,
                        teacher=None if method == 'ce' else 'resnet32x4')
        for seed, best in zip(seeds, values):
            if best is not None:
                write_run(os.path.join(directory, method, f'seed_{seed}'), best_top1=best, last_top1=best - 1,
                          seed=seed, **settings)
    return str(directory)


@pytest.mark.quick
def test_a_table_reports_paired_differences_against_its_baseline(tmp_path):
    table = write_table(tmp_path / 'table', {'ce': [72.5, 74.5, 71.0], 'kd': [73.0, 74.0, 72.0],
                                             'ijckd': [76.0, 75.5, None]})
    result = run_cli(table, '--plot', str(tmp_path / 'table.png'))
    assert result.returncode == 0, result.stderr
    rows = [[cell.strip() for cell in line.strip('|').split('|')] for line in result.stdout.splitlines()]
    assert rows[0] == ['method', 'seeds', 'best top-1', 'last top-1', 'best top-1 per seed', 'paired Δ best vs kd',
                       'ahead of kd', 'paper']
    # By hand: ce − kd per seed −0.5, +0.5, −1.0: mean −0.33, sample std 0.76; ijckd − kd on the
    # two seeds it finished, +3.0 and +1.5: mean 2.25, sample std 1.06.
    assert rows[2:] == [
        ['ce', '3 of 3', '72.67 ± 1.76', '71.67 ± 1.76', '72.50 74.50 71.00', '-0.33 ± 0.76', '1 of 3', '72.50'],
        ['kd', '3 of 3', '73.00 ± 1.00', '72.00 ± 1.00', '73.00 74.00 72.00', '—', '—', '73.33'],
        ['ijckd', '2 of 3', '75.75 ± 0.35', '74.75 ± 0.35', '76.00 75.50', '+2.25 ± 1.06', '2 of 2', '76.52']]
    assert (tmp_path / 'table.png').read_bytes().startswith(PNG_SIGNATURE)
    against_ce = run_cli(table, '--baseline', 'ce')  # ijckd − ce: +3.5, +1.0
    assert [cell.strip() for cell in against_ce.stdout.splitlines()[4].split('|')[6:8]] == ['+2.25 ± 1.77', '2 of 2']
    unknown = run_cli(table, '--baseline', 'simkd')
    assert (unknown.returncode, unknown.stdout) == (2, '')
    assert unknown.stderr == 'error: --baseline simkd is not a method of this table; its methods: ce, kd, ijckd.\n'
