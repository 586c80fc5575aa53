"""A comparison table: several methods × seeds of one teacher→student pair, trained as one run.

A table config (configs/cifar_table.py) is a run's config without `loss` and `connector`, plus
`methods` (the methods trained, comma-separated), `method_settings` (each known method's loss
and connector, from its own config file) and `seeds_vectorized`. Each method × seed is an
ordinary run directory, WORKDIR/METHOD/seed_SEED, whose run.json, history, checkpoints and
summary are those of the same method's config trained alone with that seed; WORKDIR/table.json
records what the table trains, so that a restart with other methods, seeds or settings is refused.
"""
import os

import ml_collections

from ijckd_jax import files
from ijckd_jax.config import validate_config
from ijckd_jax.errors import ConfigError, WorkdirError
from ijckd_jax.objectives import get_objective
from ijckd_jax.training.workdir import field_differences, flatten, math_fields, read_json

TABLE = 'table.json'
TABLE_FIELDS = ('methods', 'method_settings', 'seeds_vectorized')
SEEDS_VECTORIZED = ('auto', 'vmap', 'in_turn')


# What a comparison table's methods keep of their own: the rest of their configs is shared.
OWN_FIELDS = ('loss', 'connector', 'teacher')


def table_config(configs, methods):
    """A comparison table of `configs`, {method: its config alone} (configs/cifar_table.py builds
    each from the method's own config file); `methods` is the comma-separated default list.
    Refused, naming the field, where two methods' configs disagree on what the table shares
    (data, student, teacher, batch, epochs, schedule)."""
    shared = {method: {key: value for key, value in flatten(config.to_dict()).items()
                       if key.split('.')[0] not in OWN_FIELDS}
              for method, config in configs.items()}
    teachers = {method: (config.teacher.model, config.teacher.checkpoint) for method, config in configs.items()
                if get_objective(config.loss.name).uses_teacher}
    first = next(iter(configs))
    for method in configs:
        for key in sorted(set(shared[first]) | set(shared[method])):
            if shared[method].get(key) != shared[first].get(key):
                raise ConfigError(f"The table shares {key}, but {method}'s config gives {shared[method].get(key)!r} "
                                  f"and {first}'s {shared[first].get(key)!r}; set the same value in both config "
                                  'files.')
    if len(set(teachers.values())) > 1:
        raise ConfigError(f'The table shares its teacher, but its methods\' configs give {teachers}.')
    table = configs[first].copy_and_resolve_references()
    for key in ('loss', 'connector'):
        del table[key]
    if teachers:
        table.teacher.model, table.teacher.checkpoint = next(iter(teachers.values()))
    # The methods trained, in the table's order: e.g. --config.methods=kd,ijckd. Any method of
    # method_settings may be named.
    table.methods = methods
    # Each method's own loss and connector, as its config file gives them; change one with e.g.
    # --config.method_settings.ijckd.loss.alpha_ce=0.5.
    table.method_settings = ml_collections.ConfigDict(
        {method: dict(loss=config.loss.to_dict(), connector=config.connector.to_dict())
         for method, config in configs.items()})
    # The table's seeds (config.seeds) vmapped in one step ('vmap'), or stepped one after another
    # in it ('in_turn'); 'auto': vmapped on accelerators, in turn on a CPU, where that measured
    # faster (bench/RESULTS.md).
    table.seeds_vectorized = 'auto'
    return table


def is_table(config):
    return 'methods' in config


def method_names(config):
    """config.methods, 'ce,kd,ijckd', as a list of names."""
    return split_methods(config.methods, 'methods')


def split_methods(text, field):
    """A list of methods as every config field that holds one writes it, 'ce,kd,ijckd' (the
    field's name for the error), as a list of names; none named twice."""
    if not isinstance(text, str):
        raise ConfigError(f'config.{field}={text!r} must name methods separated by commas, e.g. '
                          f'--config.{field}=kd,ijckd.')
    names = [name.strip() for name in text.split(',') if name.strip()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"config.{field}={text!r} names {', '.join(repeated)} twice; each method is "
                          'one column of the table.')
    return names


def validate_table(table, device_count):
    """Every check of a table that can fail before any work: the methods known and distinct,
    and each method's config valid as a run alone with the table's seeds (its teacher there)."""
    names = method_names(table)
    known = ', '.join(table.method_settings)
    if not names:
        raise ConfigError(f'config.methods={table.methods!r} names no method; name some of: {known}.')
    for name in names:
        if name not in table.method_settings:
            raise ConfigError(f"config.methods={table.methods!r}: '{name}' is not a method of this table; "
                              f'known: {known}.')
    if table.seeds_vectorized not in SEEDS_VECTORIZED:
        raise ConfigError(f'config.seeds_vectorized={table.seeds_vectorized!r} must be one of '
                          f"{', '.join(SEEDS_VECTORIZED)}.")
    for name in names:
        config = method_config(table, name)
        config.seeds = table.seeds
        validate_config(config, device_count)


def method_config(table, method):
    """The config of `method` trained alone: the table's shared fields with the method's own loss
    and connector; a method without a teacher has none (as configs/cifar_teacher.py)."""
    config = table.copy_and_resolve_references()
    config.unlock()  # main.py's config flag locks the table
    for name in TABLE_FIELDS:
        del config[name]
    settings = table.method_settings[method]
    config.loss = settings.loss.copy_and_resolve_references()
    config.connector = settings.connector.copy_and_resolve_references()
    config.seeds = ()
    if not get_objective(config.loss.name).uses_teacher:
        config.teacher = ml_collections.ConfigDict(dict(model='', checkpoint=''))
    return config


def method_configs(table):
    """{method: its config alone}, in the table's order."""
    return {method: method_config(table, method) for method in method_names(table)}


def table_runs(table, workdir):
    """(config, workdir, index) of every method × seed, method by method: the config of the
    method trained alone with that seed, WORKDIR/METHOD/seed_SEED, and (method, the seed's
    position in the state stacked over config.seeds, or None without config.seeds)."""
    seeds = list(table.seeds) or [table.seed]
    runs = []
    for method, config in method_configs(table).items():
        for position, seed in enumerate(seeds):
            seed_config = config.copy_and_resolve_references()
            seed_config.seed = seed
            runs.append((seed_config, os.path.join(workdir, method, f'seed_{seed}'),
                         (method, position if table.seeds else None)))
    return runs


def table_record(table):
    """What table.json holds: the methods, the seeds, and the fields that change what the table
    computes (of method_settings, the listed methods' only)."""
    names = method_names(table)
    fields = {key: value for key, value in math_fields(table).items()
              if key not in ('methods', 'seed') and not (key.startswith('method_settings.')
                                                        and key.split('.')[1] not in names)}
    return {'methods': names, 'seeds': list(table.seeds) or [table.seed], 'config': fields}


def holds_single_run(workdir):
    """Whether `workdir` holds a run trained alone: its run.json, checkpoints or seed folders."""
    if not os.path.isdir(workdir):
        return False
    return any(entry in ('run.json', 'checkpoints') or entry.startswith('seed_') for entry in os.listdir(workdir))


def check_table_workdir(workdir, table):
    """Before any work: a table's workdir holds no single run, and a table that trained there
    before is this one (the same methods, seeds and settings)."""
    if holds_single_run(workdir):
        raise WorkdirError(f'{workdir} holds a run trained alone, not a comparison table; pass a new --workdir '
                           'for the table.')
    path = os.path.join(workdir, TABLE)
    if not os.path.exists(path):
        return
    stored, current = read_json(path), table_record(table)
    differences = [f'{key} {stored[key]!r} there, {current[key]!r} now' for key in ('methods', 'seeds')
                   if stored[key] != current[key]]
    differences = differences or field_differences(stored['config'], current['config'])
    if differences:
        raise WorkdirError(f'{workdir} holds another table: {"; ".join(differences)}. Pass the same values to '
                           'resume it, or a new --workdir.')


def check_not_a_table(workdir):
    """Before any work: a run trained alone is not written into a table's workdir."""
    if os.path.exists(os.path.join(workdir, TABLE)):
        raise WorkdirError(f'{workdir} holds a comparison table ({TABLE}); train a single run in a new '
                           '--workdir, or one of its methods with configs/cifar_table.py.')


def record_table(workdir, table):
    """Writes table.json for a table that starts afresh."""
    path = os.path.join(workdir, TABLE)
    if not os.path.exists(path):
        files.write_json(path, table_record(table))
