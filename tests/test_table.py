"""The comparison table (configs/cifar_table.py, ijckd_jax/table.py) end to end on mocked
CIFAR-100: each method × seed is the run of that method alone, the methods are paired, a
killed table resumes exactly, and what it must refuse is one line before any work."""
import json
import os
import re
import shutil

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import cifar_table
from configs.common import cifar_distillation_config
from conftest import DISTILLED_TABLES, EXAMPLES, REPOSITORY, distilled_table, shrink
from ijckd_jax.data.pipeline import Pipeline
from ijckd_jax.deploy.artifact import export_run
from ijckd_jax.errors import ConfigError, WorkdirError
from ijckd_jax.training.layout import check_table_workdir, record_table, rows_of, runs_of, table_config, table_record
from ijckd_jax.training import loop
from ijckd_jax.training.experiment import create_experiment, load_teacher
from ijckd_jax.training.loop import train_and_evaluate
from ijckd_jax.training.mesh import Mesh
from ijckd_jax.training.runs import Run, assemble, listing, of_run, seed_order, select
from ijckd_jax.training.workdir import record_run
from rounding import DRAWS, beyond_rounding, one_ulp_away
from test_bad_input import assert_one_error_line, main
from test_sources import folder_config, write_folder
from test_train import final_state, run_record

PAIR = 'resnet8-wrn_16_1'


def small_table(teacher, methods, **fields):
    """A table of `methods` on the small pair, locked as main.py's config flag leaves it."""
    config = shrink(cifar_table.get_config(PAIR), steps_per_epoch=1, **fields)
    config.methods = methods
    if teacher is not None:
        config.teacher.checkpoint = str(teacher[0] / 'export')
    config.lock()
    return config


def alone_config(teacher, method, **fields):
    """`method` alone on the small pair; SRRL with α = 0.5, as the table's row srrl@loss.alpha=0.5."""
    config = shrink(cifar_distillation_config(method, PAIR), steps_per_epoch=1, **fields)
    config.teacher.checkpoint = str(teacher[0] / 'export')
    if method == 'srrl':
        config.loss.alpha = 0.5
    return config


SRRL_ROW = 'srrl@loss.alpha=0.5'  # a row with an override: its method's config with α changed


def test_runs_trained_together_each_follow_the_run_alone(teacher, tmp_path, monkeypatch):
    """SRRL with config.seeds=(0, 3) (vmapped), and a table of KD (no connector) and a row of
    SRRL with an override (a connector; α = 0.5) × seeds (0, 3) (stepped in turn, the CPU's
    default), each stopped after its first
    epoch and resumed: every seed 3 is that method trained alone with seed 3, parameters and
    every metric, within what rounding moves them (rounding.py): the vmapped convolutions, the
    teacher computed once and the seeds in turn each round differently. SRRL's student
    classifier is compared with the teacher's per seed. One batch of 8 examples per split: the
    vmapped convolutions run slowly on a CPU."""
    with tfds.testing.mock_data(num_examples=8):
        seeds = alone_config(teacher, 'srrl', num_epochs=1, seeds=(0, 3))
        train_and_evaluate(seeds, str(tmp_path / 'seeds'))
        seeds.num_epochs = 2
        together = {'seeds': train_and_evaluate(seeds, str(tmp_path / 'seeds'))}
        train_and_evaluate(small_table(teacher, f'kd,{SRRL_ROW}', num_epochs=1, seeds=(0, 3)),
                           str(tmp_path / 'table'))
        together['table'] = train_and_evaluate(small_table(teacher, f'kd,{SRRL_ROW}', seeds=(0, 3)),
                                               str(tmp_path / 'table'))
        # A table's run is an ordinary run: its run.json is SRRL's config alone, so it exports as one.
        shipped = export_run(str(tmp_path / 'table' / SRRL_ROW / 'seed_3'), str(tmp_path / 'shipped'))
        alone, configs, perturbed = {}, {}, {}
        for method in ('kd', 'srrl'):
            summary = train_and_evaluate(alone_config(teacher, method, seed=3), str(tmp_path / method))
            alone[method], configs[method] = run_record(tmp_path / method, summary), summary['config']
            perturbed[method] = []
            for draw in range(DRAWS):  # seed 3 alone from initial parameters one ulp away
                monkeypatch.setattr(loop, 'create_experiment', lambda *arguments: (
                    lambda experiment: experiment._replace(state={method: experiment.state[method].replace(
                        params=one_ulp_away(experiment.state[method].params, draw))}))(
                            create_experiment(*arguments)))
                workdir = tmp_path / f'{method}_perturbed{draw}'
                perturbed[method].append(run_record(workdir, train_and_evaluate(alone_config(
                    teacher, method, seed=3), str(workdir))))
                monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / 'seeds')) == ['seed_0', 'seed_3']
    assert sorted(os.listdir(tmp_path / 'table')) == ['kd', SRRL_ROW, 'table.json']
    assert [(summary['objective'], summary['seed']) for summary in together['table']] == [
        ('kd', 0), ('kd', 3), ('srrl', 0), ('srrl', 3)]
    followers = {('seeds', 'srrl'): (tmp_path / 'seeds' / 'seed_3', together['seeds'][1]),
                 ('table', 'kd'): (tmp_path / 'table' / 'kd' / 'seed_3', together['table'][1]),
                 ('table', 'srrl'): (tmp_path / 'table' / SRRL_ROW / 'seed_3', together['table'][3])}
    for (_, method), (workdir, summary) in followers.items():
        assert summary['config'] == configs[method]
        assert int(final_state(workdir)['step']) == 2
        history = json.loads((workdir / 'history.json').read_text())
        assert [entry.keys() for entry in history] == [entry.keys() for entry in alone[method]['history'].values()]
        assert beyond_rounding(run_record(workdir, summary), alone[method], perturbed[method]) == []
    assert 'classifier_distance' in alone['srrl']['history']['1']
    assert (shipped['objective'], shipped['teacher']) == ('srrl', 'resnet8')
    # The check can fail: seed 0's run is far beyond rounding from seed 3's.
    for workdir, method in ((tmp_path / 'seeds' / 'seed_0', 'srrl'), (tmp_path / 'table' / 'kd' / 'seed_0', 'kd')):
        assert beyond_rounding(final_state(workdir)['params'], alone[method]['params'],
                               [run['params'] for run in perturbed[method]])


def test_a_killed_table_resumes_to_the_runs_of_an_uninterrupted_one_and_methods_are_paired(tmp_path):
    """A kill that left the last checkpoint in some runs only: the restart goes back to the
    common step and every method × seed ends bit for bit as in an uninterrupted table. 'ce' and
    a copy of it under another name start from the same initialisation and see the same batches,
    crops and flips, so they end equal; the seeds do not. The seeds vmapped, as on accelerators
    (the test above steps them in turn, as on a CPU)."""
    def config():
        table = small_table(None, 'ce,ce_again', seeds=(0, 1), seeds_vectorized='vmap')
        with table.unlocked():
            table.method_settings.ce_again = table.method_settings.ce.copy_and_resolve_references()
        return table

    # One batch of 8 examples per split: vmapped convolutions run slowly on a CPU (1.6 s a step
    # for these two seeds), and what is checked, the resume, does not need more.
    with tfds.testing.mock_data(num_examples=8):
        whole = train_and_evaluate(config(), str(tmp_path / 'whole'))
        shutil.copytree(tmp_path / 'whole', tmp_path / 'parts')  # what the same table run again writes
        killed = tmp_path / 'parts' / 'ce_again' / 'seed_1'
        shutil.rmtree(killed / 'checkpoints' / '2')  # as if killed before this run saved its last epoch
        resumed = train_and_evaluate(config(), str(tmp_path / 'parts'))
    assert resumed == whole
    for method in ('ce', 'ce_again'):
        for seed in (0, 1):
            run = os.path.join(method, f'seed_{seed}')
            jax.tree.map(np.testing.assert_array_equal, final_state(tmp_path / 'whole' / run),
                         final_state(tmp_path / 'parts' / run))
            assert (tmp_path / 'whole' / run / 'history.json').read_text() == \
                (tmp_path / 'parts' / run / 'history.json').read_text()
    same_seed = [final_state(tmp_path / 'whole' / method / 'seed_1')['params'] for method in ('ce', 'ce_again')]
    jax.tree.map(np.testing.assert_array_equal, *same_seed)
    other_seed = final_state(tmp_path / 'whole' / 'ce' / 'seed_0')['params']
    assert not np.array_equal(other_seed['student']['conv1']['kernel'], same_seed[0]['student']['conv1']['kernel'])


def test_the_methods_with_state_of_their_own_resume_exactly_in_a_table(teacher, distilled, tmp_path):
    """The methods with state beyond parameters: FitNet's regressor (with its BatchNorm
    statistics), CRD's embeddings, memory banks and Z, and DKD's warm-up, which reads the epoch,
    in the shared table that holds them (conftest.DISTILLED_TABLES), restarted from its first
    epoch's checkpoints: bit for bit the uninterrupted table, each method's head saved in its
    own run. (The other methods train end to end in test_train.py; their state is parameters
    only, resumed as every run's.)"""
    methods = DISTILLED_TABLES[0]
    assert {'fitnet', 'crd', 'dkd'} <= set(methods)
    whole = distilled(methods[0])[0].parent.parent  # the uninterrupted table
    shutil.copytree(whole, tmp_path, dirs_exist_ok=True)
    for method in methods:  # as if stopped before the second epoch's checkpoints
        shutil.rmtree(tmp_path / method / 'seed_0' / 'checkpoints' / '4')
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        train_and_evaluate(distilled_table(teacher, methods), str(tmp_path))
    for method in methods:
        resumed, uninterrupted = tmp_path / method / 'seed_0', whole / method / 'seed_0'
        for name in ('summary.json', 'history.json'):
            assert (resumed / name).read_text() == (uninterrupted / name).read_text()
        whole_state, resumed_state = final_state(uninterrupted), final_state(resumed)
        jax.tree.map(np.testing.assert_array_equal, whole_state, resumed_state)
        assert ('head' in whole_state['params']) == (method in ('fitnet', 'crd'))
    for method in ('fitnet', 'crd'):  # BatchNorm statistics; the memory banks
        assert 'head' in final_state(whole / method / 'seed_0')['batch_stats']


def test_methods_of_one_seed_start_from_one_student_backbone(teacher):
    """Connectors and heads aside, every method's student starts as the same seed's."""
    config = small_table(teacher, 'ce,kd,srrl,ijckd', seeds=(0, 1))
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        experiment = create_experiment(config, Mesh(), 1, load_teacher(config))
    students = {method: state.params['student'] for method, state in experiment.state.items()}
    for method in ('kd', 'srrl', 'ijckd'):
        jax.tree.map(np.testing.assert_array_equal, students[method], students['ce'])
    assert 'connector' in experiment.state['srrl'].params and 'connector' not in experiment.state['kd'].params
    kernels = np.asarray(students['ce']['conv1']['kernel'])
    assert not np.array_equal(kernels[0], kernels[1])


def refused_before_any_work(config, workdir, error, message):
    """train_and_evaluate refuses `config` with `message`, and nothing new is written in `workdir`."""
    before = sorted(os.listdir(workdir)) if os.path.isdir(workdir) else None
    with pytest.raises(error, match=message):
        train_and_evaluate(config, str(workdir))
    assert (sorted(os.listdir(workdir)) if os.path.isdir(workdir) else None) == before


@pytest.mark.quick
@pytest.mark.parametrize('methods, message', [
    ('kd,nope', r"config.methods='kd,nope': 'nope' is not a method of this table; known: at, ce, .*ijckd.*, kd, "),
    ('kd,ijckd,kd', r"config.methods='kd,ijckd,kd' names kd twice; each method is one column of the table."),
    (',', r"config.methods=',' names no method; name some of: "),
])
def test_a_table_of_unknown_or_repeated_methods_is_refused(methods, message, tmp_path):
    refused_before_any_work(small_table(None, methods), tmp_path / 'table', ConfigError, message)


@pytest.mark.quick
def test_a_table_without_the_teacher_a_method_needs_is_refused(tmp_path):
    config = small_table(None, 'ce,ijckd')
    refused_before_any_work(config, tmp_path / 'table', ConfigError,
                            "Objective 'ijckd' needs a teacher but config.teacher.checkpoint is empty")
    config.methods = 'ce'  # needs none
    assert rows_of(config)['ce'].teacher.model == ''


@pytest.mark.quick
def test_method_configs_that_disagree_on_what_the_table_shares_are_refused():
    kd, ijckd = (cifar_distillation_config(method, PAIR) for method in ('kd', 'ijckd'))
    ijckd.optimizer.decay_epochs = (100, 200)
    with pytest.raises(ConfigError, match=r"The table shares optimizer.decay_epochs, but ijckd's config gives "
                                         r"\(100, 200\) and kd's \(150, 180, 210\); set the same value"):
        table_config({'kd': kd, 'ijckd': ijckd}, 'kd,ijckd')


@pytest.mark.quick
def test_a_table_and_a_single_run_never_share_a_workdir(teacher, tmp_path):
    """A table where a run trained alone is, a run alone where a table is, and a table restarted
    with other methods, seeds or settings: refused before any work."""
    single = tmp_path / 'single'
    single.mkdir()
    record_run(str(single), alone_config(teacher, 'kd'), 4, 1)
    refused_before_any_work(small_table(teacher, 'kd'), single, WorkdirError,
                            'holds a run trained alone, not a comparison table; pass a new --workdir')
    table = tmp_path / 'table'
    table.mkdir()
    record_table(str(table), small_table(teacher, 'kd,ijckd', seeds=(0, 1)))
    refused_before_any_work(alone_config(teacher, 'kd'), table, WorkdirError,
                            r'holds a comparison table \(table.json\); train a single run in a new --workdir')
    refused_before_any_work(small_table(teacher, 'kd,srrl', seeds=(0, 1)), table, WorkdirError,
                            r"holds another table: methods \['kd', 'ijckd'\] there, \['kd', 'srrl'\] now. Pass "
                            'the same values to resume it, or a new --workdir.')
    refused_before_any_work(small_table(teacher, 'kd,ijckd', seeds=(0, 2)), table, WorkdirError,
                            r'holds another table: seeds \[0, 1\] there, \[0, 2\] now')
    changed = small_table(teacher, 'kd,ijckd', seeds=(0, 1))
    changed.method_settings.ijckd.loss.alpha_ce = 0.2
    refused_before_any_work(changed, table, WorkdirError,
                            'holds another table: method_settings.ijckd.loss.alpha_ce 1.0 there, 0.2 now')
    changed = small_table(teacher, 'kd,ijckd', seeds=(0, 1))
    changed.method_settings.srrl.loss.alpha = 2.0  # a method the table does not train
    changed.num_epochs = 3  # more epochs continue a table
    check_table_workdir(str(table), changed)


def test_the_table_config_flag_parses_methods_and_seeds(tmp_path):
    """python main.py --config configs/cifar_table.py:... --config.methods=kd,nope: one line."""
    result = main(['--config', os.path.join(REPOSITORY, 'configs/cifar_table.py:resnet8-wrn_16_1'),
                   '--workdir', str(tmp_path / 'table'), '--config.methods=kd,nope', '--config.seeds=0,1'], tmp_path)
    assert_one_error_line(result, "error: config.methods='kd,nope': 'nope' is not a method of this table; known: "
                                  'at, ce, ce_teacher_classifier, crd, dkd, fitnet, ijckd, ijckd_distance, '
                                  'ijckd_joint, '
                                  'kd, ofd, pkt, rkd, simkd, srrl, vid, wsld.')
    assert not (tmp_path / 'table').exists()
    result = main(['--config', os.path.join(REPOSITORY, 'configs/cifar_table.py:resnet8-wrn_16_1'),
                   '--workdir', str(tmp_path / 'table'), '--config.methods=kd,ijckd@loss.alpha_c=0.2'], tmp_path)
    assert_one_error_line(result, "error: config.methods: the row 'ijckd@loss.alpha_c=0.2' sets loss.alpha_c, which "
                                  "is not a field of its method's own; its fields: loss.alpha_ce, loss.alpha_lm, "
                                  'loss.beta_fm, loss.logit_loss, connector.factor, connector.kind.')
    assert not (tmp_path / 'table').exists()


def test_show_config_prints_each_rows_resolved_settings_without_a_workdir(tmp_path):
    result = main(['--config', os.path.join(REPOSITORY, 'configs/cifar_table.py:resnet32x4-resnet8x4,rows=table4'),
                   '--config.seeds=0,1', '--show_config'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    printed, *rows = result.stdout.split('\nrow ')
    assert json.loads(printed)['seeds'] == [0, 1] and json.loads(printed)['methods'] == cifar_table.ROWS['table4']
    assert rows[1] == ('ijckd@loss.logit_loss=cosine+loss.alpha_lm=10: {"connector": {"factor": 2, "kind": "1x1"}, '
                       '"loss": {"alpha_ce": 1.0, "alpha_lm": 10.0, "beta_fm": 0.0, "logit_loss": "cosine", '
                       '"name": "ijckd"}}')
    assert os.listdir(tmp_path) == []


@pytest.mark.quick
def test_a_rows_overrides_are_its_methods_config_with_those_fields_and_its_folder_is_named_by_it():
    table = cifar_table.get_config('resnet32x4-resnet8x4,rows=table3')
    rows = rows_of(table)
    assert list(rows)[:2] == ['ijckd@loss.alpha_ce=0', 'ijckd@loss.alpha_ce=0.1']
    assert rows['ijckd@loss.alpha_lm=0+loss.beta_fm=1'].loss.to_dict() == {
        'name': 'ijckd', 'alpha_ce': 1.0, 'alpha_lm': 0.0, 'beta_fm': 1.0, 'logit_loss': 'mse'}
    alone = cifar_distillation_config('ijckd', 'resnet32x4-resnet8x4,alpha_lm=0,beta_fm=1')
    assert rows['ijckd@loss.alpha_lm=0+loss.beta_fm=1'].to_dict() == {**alone.to_dict(), 'seeds_vectorized': 'auto'}
    table.methods = 'simkd@connector.kind=1x1-1x1,kd@loss.temperature=2'
    assert [run.workdir for run in runs_of(table, 'w')] == ['w/simkd@connector.kind=1x1-1x1/seed_0',
                                                            'w/kd@loss.temperature=2/seed_0']
    assert table_record(table)['methods'] == ['simkd@connector.kind=1x1-1x1', 'kd@loss.temperature=2']
    assert sorted({key.split('.')[1] for key in table_record(table)['config'] if key.startswith('method_settings.')}) \
        == ['kd', 'simkd']
    for row, message in (('kd@loss.temperature=hot', 'loss.temperature is a number, e.g. 4.0'),
                         ('fitnet@loss.hint_layer=1.5', 'loss.hint_layer is a whole number, e.g. 2'),
                         ('kd@optimizer.learning_rate=1', "optimizer.learning_rate, which is not a field of its "
                                                          "method's own"),
                         ('kd@temperature', "sets 'temperature', not FIELD=VALUE")):
        table.methods = row
        with pytest.raises(ConfigError, match=re.escape(message)):
            rows_of(table)


@pytest.mark.quick
def test_a_runs_part_of_the_state_and_metrics_and_back():
    """runs.select and runs.assemble are inverse; of_run picks a run's metrics by row and seed."""
    state = {'kd': {'w': np.arange(6.0).reshape(2, 3)}, 'srrl': {'w': -np.arange(6.0).reshape(2, 3)}}
    runs = [Run(None, '', row, position) for row in ('kd', 'srrl') for position in (0, 1)]
    parts = [select(state, run) for run in runs]
    np.testing.assert_array_equal(parts[3]['w'], [-3.0, -4.0, -5.0])
    jax.tree.map(np.testing.assert_array_equal, assemble(parts, runs), state)
    one_seed = {'kd': {'w': np.ones(3)}, 'ce': {'w': np.zeros(3)}}
    alone = [Run(None, '', 'kd'), Run(None, '', 'ce')]
    jax.tree.map(np.testing.assert_array_equal, assemble([select(one_seed, run) for run in alone], alone), one_seed)
    metrics = {'kd': {'loss': np.array([0.5, 0.25])}, 'kd_again': {'loss': np.array([9.0, 9.0])},
               'srrl': {'top1': np.array([1, 2])}}
    assert of_run(metrics, runs[1]) == {'loss': 0.25}
    assert of_run({'kd': {'loss': np.array(3.0)}}, alone[0]) == {'loss': 3.0}


def test_a_table_over_streamed_images_reads_each_batch_once_for_all_methods(tmp_path, monkeypatch):
    """Host-fed, as ImageNet is: images of 80 pixels streamed, one batch read and
    augmented per step for every method; two methods of identical settings end equal."""
    config = folder_config(write_folder(tmp_path / 'images', size=80), image_size=72)
    config.student.model, config.num_epochs = 'resnet8', 1
    table = table_config({'ce': config, 'ce_again': config.copy_and_resolve_references()}, 'ce,ce_again')
    read = []
    original = Pipeline.train_epoch

    def counted(self, *arguments, **settings):
        for images, labels in original(self, *arguments, **settings):
            read.append(len(images))
            yield images, labels
    monkeypatch.setattr(Pipeline, 'train_epoch', counted)
    summaries = train_and_evaluate(table, str(tmp_path / 'table'))
    assert read == [4, 4, 4]  # the epoch's 3 batches, once
    assert [summary['objective'] for summary in summaries] == ['ce', 'ce']
    jax.tree.map(np.testing.assert_array_equal, final_state(tmp_path / 'table' / 'ce' / 'seed_0'),
                 final_state(tmp_path / 'table' / 'ce_again' / 'seed_0'))


@pytest.mark.quick
def test_the_epoch_line_says_which_number_is_which_seeds():
    from types import SimpleNamespace

    runs = [Run(SimpleNamespace(seed=seed), '', row, position) for row in ('kd', 'srrl')
            for position, seed in enumerate((0, 3))]
    assert seed_order(runs) + ': ' + listing([45.1, 45.3, 46.0, 46.25], runs, 2) == \
        ' (seeds 0/3): kd 45.10/45.30, srrl 46.00/46.25'
    seeds = runs[:2]
    assert seed_order(seeds) + ': ' + listing([45.1, 45.3], seeds, 2) == ' (seeds 0/3): 45.10/45.30'
    alone = [Run(SimpleNamespace(seed=3), '', 'kd')]
    assert seed_order(alone) + listing([45.1], alone, 2) == '45.10'
