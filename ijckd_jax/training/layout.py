"""Which runs a config trains, and where they live: the one place that knows a run alone, a
seeds run and a comparison table apart.

Every config trains rows (a method with its settings) × seeds. A run alone is one row and one
seed, in WORKDIR; a run over config.seeds is one row, each seed's run in WORKDIR/seed_SEED; a
comparison table (configs/cifar_table.py) is several rows, each row × seed in
WORKDIR/ROW/seed_SEED. A table config is a run's config without `loss` and `connector`, plus
`methods` (the rows trained, comma-separated) and `method_settings` (each known method's loss
and connector, from its config). Each run directory's run.json, history, checkpoints
and summary are those of the same row's config trained alone with that seed; WORKDIR/table.json
records what a table trains, so that a restart with other methods, seeds or settings is refused.
"""
import os

import ml_collections

from ijckd_jax import files
from ijckd_jax.config import validate_config
from ijckd_jax.errors import ConfigError, WorkdirError
from ijckd_jax.objectives import get_objective
from ijckd_jax.training.runs import Run, directory_name
from ijckd_jax.training.workdir import field_differences, flatten, math_fields, read_json

TABLE = 'table.json'
TABLE_FIELDS = ('methods', 'method_settings')


# What a comparison table's methods keep of their own: the rest of their configs is shared.
OWN_FIELDS = ('loss', 'connector', 'teacher')
# What a method of a table keeps in method_settings, and what a row may set of it (METHOD@FIELD=VALUE).
ROW_FIELDS = ('loss', 'connector')


def table_config(configs, methods):
    """A comparison table of `configs`, {method: its config alone} (configs/cifar_table.py builds
    each from its row of configs/cifar.py); `methods` is the comma-separated default list.
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
    for key in ROW_FIELDS:
        del table[key]
    if teachers:
        table.teacher.model, table.teacher.checkpoint = next(iter(teachers.values()))
    # The methods trained, in the table's order: e.g. --config.methods=kd,ijckd. Any method of
    # method_settings may be named.
    table.methods = methods
    # Each method's own loss and connector, as its config file gives them; change one with e.g.
    # --config.method_settings.ijckd.loss.alpha_ce=0.5.
    table.method_settings = ml_collections.ConfigDict(
        {method: {key: config[key].to_dict() for key in ROW_FIELDS} for method, config in configs.items()})
    # The table's seeds in turn on a CPU, vmapped on accelerators (base_config says why).
    table.seeds_vectorized = 'auto'
    return table


def is_table(config):
    return 'methods' in config


def method_names(config):
    """config.methods, 'ce,kd,ijckd', as a list of names: at least one."""
    names = split_methods(config.methods, 'methods')
    if not names:
        raise ConfigError(f"config.methods={config.methods!r} names no method; name some of: "
                          f"{', '.join(config.method_settings)}.")
    return names


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


def parse_row(table, row):
    """'METHOD[@FIELD=VALUE[+FIELD=VALUE...]]' → (METHOD, [(FIELD, VALUE text), ...]), the method
    one of the table's."""
    method, _, overrides = row.partition('@')
    if method not in table.method_settings:
        raise ConfigError(f"config.methods={table.methods!r}: '{method}' is not a method of this table; "
                          f"known: {', '.join(table.method_settings)}.")
    fields = []
    for override in overrides.split('+') if overrides else []:
        field, equals, value = override.partition('=')
        if not equals or not field or not value:
            raise ConfigError(f"config.methods={table.methods!r}: the row '{row}' sets '{override}', not "
                              'FIELD=VALUE; a row is METHOD[@FIELD=VALUE[+FIELD=VALUE...]], e.g. '
                              'ijckd@loss.alpha_ce=0.2+connector.kind=1x1-1x1.')
        fields.append((field, value))
    return method, fields


def override(config, row, field, text):
    """config.FIELD = the value `text` names, of the kind of the field's own value: a row sets
    its method's loss and connector, which are its own, nothing the table shares."""
    group, _, name = field.partition('.')
    if group not in ROW_FIELDS or name not in config[group]:
        fields = ', '.join(f'{part}.{key}' for part in ROW_FIELDS for key in config[part] if key != 'name')
        raise ConfigError(f"config.methods: the row '{row}' sets {field}, which is not a field of its method's "
                          f'own; its fields: {fields}.')
    current = config[group][name]
    if isinstance(current, str):
        config[group][name] = text
        return
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is None or (isinstance(current, int) and not number.is_integer()):
        kind = 'a whole number' if isinstance(current, int) else 'a number'
        raise ConfigError(f"config.methods: the row '{row}' sets {field}={text}, but {field} is {kind}, "
                          f'e.g. {current!r}.')
    config[group][name] = type(current)(number)


def method_config(table, row):
    """The config of a row trained alone: the table's shared fields with the row's method's own
    loss and connector, and the row's overrides of them; a method without a teacher has none (as
    configs/cifar_teacher.py)."""
    method, overrides = parse_row(table, row)
    config = table.copy_and_resolve_references()
    config.unlock()  # main.py's config flag locks the table
    for name in TABLE_FIELDS:
        del config[name]
    for key in ROW_FIELDS:
        config[key] = table.method_settings[method][key].copy_and_resolve_references()
    for field, text in overrides:
        override(config, row, field, text)
    config.seeds = ()
    if not get_objective(config.loss.name).uses_teacher:
        config.teacher = ml_collections.ConfigDict(dict(model='', checkpoint=''))
    return config


def rows_of(config):
    """{row: its config alone}: a table's methods in its order, or the run's own objective."""
    if is_table(config):
        return {method: method_config(config, method) for method in method_names(config)}
    return {config.loss.name: config}


def runs_of(config, workdir):
    """Every row × seed of `config`, row by row, each with the config of its row trained alone
    with that seed, its run directory and its seed's position in a state stacked over
    config.seeds (None without config.seeds)."""
    seeds = list(config.seeds) or [config.seed]
    runs = []
    for row, row_config in rows_of(config).items():
        for position, seed in enumerate(seeds):
            seed_config = row_config.copy_and_resolve_references()
            seed_config.seed = seed
            if is_table(config):
                directory = os.path.join(workdir, directory_name(row), f'seed_{seed}')
            else:
                directory = os.path.join(workdir, f'seed_{seed}') if config.seeds else workdir
            runs.append(Run(seed_config, directory, row, position if config.seeds else None))
    return runs


def loss_field(config, row):
    """Where a row's loss settings are set: 'loss', or a table's 'method_settings.METHOD.loss'."""
    return f'method_settings.{parse_row(config, row)[0]}.loss' if is_table(config) else 'loss'


def validate(config, device_count):
    """Every check of a run alone or a table that can fail before any work: a table's rows
    (methods known, overrides fields of theirs with values of the fields' kinds, no row twice)
    all parsed before any is checked, then each row's config valid as a run alone with the
    config's seeds (its teacher there)."""
    for row_config in rows_of(config).values():
        row_config.seeds = config.seeds
        validate_config(row_config, device_count)


def check_layout(workdir, config):
    """Before any work: a table's workdir holds this table or nothing, a run alone's no table."""
    if is_table(config):
        check_table_workdir(workdir, config)
    else:
        check_not_a_table(workdir)


def record_layout(workdir, config):
    """Writes what the workdir of a table that starts afresh trains (table.json)."""
    if is_table(config):
        os.makedirs(workdir, exist_ok=True)
        record_table(workdir, config)


def table_record(table):
    """What table.json holds: the rows, the seeds, and the fields that change what the table
    computes (of method_settings, the rows' methods' only)."""
    names = method_names(table)
    methods = {parse_row(table, row)[0] for row in names}
    fields = {key: value for key, value in math_fields(table).items()
              if key not in ('methods', 'seed') and not (key.startswith('method_settings.')
                                                        and key.split('.')[1] not in methods)}
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
