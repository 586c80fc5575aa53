"""Teachers by name (ijckd_jax/teachers.py), offline: a release server on 127.0.0.1 started by
each test serves generated checkpoints under their release names, and a tar in mdistiller's
layout; a test registry names them."""
import collections
import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from types import SimpleNamespace

import jax
import ml_collections
import numpy as np
import pooch
import pytest
import tensorflow_datasets as tfds
import torch

from configs.common import CIFAR100, cifar_distillation_config
from conftest import EXAMPLES, REPOSITORY, shrink
from ijckd_jax import teachers
from ijckd_jax.cli import convert as convert_command
from ijckd_jax.cli import teachers as teachers_command
from ijckd_jax.convert import convert_state_dict
from ijckd_jax.errors import ConfigError, DataUnavailable
from ijckd_jax.frozen_model import load_frozen_model
from ijckd_jax.training.loop import train_and_evaluate
from test_convert import trained_looking_model

MEMBER = 'cifar_teachers/resnet8_vanilla/ckpt_epoch_240.pth'


class ReleaseServer(http.server.ThreadingHTTPServer):
    """Serves `files` ({release file name: bytes}) at http://127.0.0.1:PORT/any/path/NAME, counts
    the requests of each name and keeps the paths asked for; the answers of the names in `cut` stop halfway, and every
    answer waits `delay` seconds first."""

    def __init__(self):
        super().__init__(('127.0.0.1', 0), ReleaseHandler)
        self.files, self.cut, self.delay = {}, set(), 0.0
        self.requests, self.paths = collections.Counter(), []
        self.counting = threading.Lock()

    @property
    def url(self):
        return f'http://127.0.0.1:{self.server_address[1]}'


class ReleaseHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        name = self.path.rsplit('/', 1)[1]
        with self.server.counting:
            self.server.requests[name] += 1
            self.server.paths.append(self.path)
        time.sleep(self.server.delay)
        content = self.server.files.get(name)
        if content is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(content)))
        self.end_headers()
        # A connection cut halfway: half the bytes of the length announced, then the close.
        self.wfile.write(content[:len(content) // 2] if name in self.server.cut else content)

    def log_message(self, *arguments):
        pass


@pytest.fixture
def server():
    releases = ReleaseServer()
    # shutdown() waits for serve_forever's next poll: every 0.5 s by default, at each test's end.
    thread = threading.Thread(target=releases.serve_forever, kwargs={'poll_interval': 0.01}, daemon=True)
    thread.start()
    yield releases
    releases.shutdown()
    releases.server_close()


def checkpoint_bytes(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


@pytest.fixture(scope='module')
def resnet8():
    """(the PyTorch state dict of a trained-looking CIFAR-100 resnet8, its file's bytes, their sha256)."""
    state_dict = trained_looking_model('resnet8', 100).state_dict()
    content = checkpoint_bytes(state_dict)
    return state_dict, content, hashlib.sha256(content).hexdigest()


def archive_bytes(members):
    """A tar of {name: bytes}, as mdistiller's cifar_teachers.tar holds its teachers."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def entry(url, model='resnet8', num_classes=100, **fields):
    return {**dict(url=url, sha256=None, sha256_prefix=None, model=model, dataset='cifar100', num_classes=num_classes,
                   mean=list(CIFAR100['mean']), std=list(CIFAR100['std']), top1=1.0, size_mib=None), **fields}


@pytest.fixture
def registry(server, resnet8, tmp_path, monkeypatch):
    """The test registry and its teachers, the cache in tmp_path/cache, no mirror: the resnet8
    with its full sha256 (test:full), with the prefix of its name only (test:prefix), and in a
    tar with another teacher (test:archive, test:other, mdistiller's layout); returns the
    release server."""
    state_dict, content, digest = resnet8
    server.files['cifar100_resnet8-full.pt'] = content
    server.files['cifar100_resnet8-prefix.pt'] = content
    server.files['teachers.tar'] = archive_bytes({MEMBER: checkpoint_bytes({'model': state_dict}),
                                                  'cifar_teachers/other/ckpt.pth': content})
    member_digest = hashlib.sha256(checkpoint_bytes({'model': state_dict})).hexdigest()
    release = f'{server.url}/releases/download'
    path = tmp_path / 'teachers.json'
    path.write_text(json.dumps({'sources': {'test': {'publisher': 'ijckd-jax/tests'}}, 'teachers': {
        'test:full': entry(f'{release}/cifar100_resnet8-full.pt', sha256=digest, sha256_prefix=digest[:8]),
        'test:prefix': entry(f'{release}/cifar100_resnet8-prefix.pt', sha256_prefix=digest[:8]),
        'test:archive': entry(f'{release}/teachers.tar', member=MEMBER, member_sha256=member_digest),
        'test:other': entry(f'{release}/teachers.tar', member='cifar_teachers/other/ckpt.pth'),
    }}))
    monkeypatch.setattr(teachers, 'REGISTRY', str(path))
    monkeypatch.setenv(teachers.CACHE_VARIABLE, str(tmp_path / 'cache'))
    monkeypatch.delenv(teachers.MIRROR_VARIABLE, raising=False)
    return server


def cached_files(tmp_path):
    """Every file under the cache but the lock files, relative to it."""
    cache = tmp_path / 'cache'
    return sorted(str(path.relative_to(cache)) for path in cache.rglob('*') if path.is_file() and path.name != '.lock')


def test_a_named_teacher_is_downloaded_checked_converted_and_teaches_a_student(registry, resnet8, tmp_path):
    """--config.teacher.checkpoint=test:full: downloaded, converted with the --verify check
    recorded, and the student trains (shrink's run of the shared resnet8 → wrn_16_1 pair, so
    its programs are those the suite has compiled); the second use downloads and converts nothing."""
    config = shrink(cifar_distillation_config('kd', 'resnet8-wrn_16_1'))
    config.teacher.checkpoint = 'test:full'
    teachers.resolve_teacher(config)
    directory = tmp_path / 'cache' / 'test' / 'full' / 'converted'
    assert config.teacher.checkpoint == str(directory)
    assert registry.requests == {'cifar100_resnet8-full.pt': 1}
    metadata = json.loads((directory / 'model.json').read_text())
    assert (metadata['model'], metadata['num_classes'], metadata['teacher']) == ('resnet8', 100, 'test:full')
    # The converter's tolerance; test_convert.py measures such resnet8s within 1e-6.
    assert 0 <= metadata['verify_max_abs_logit_difference'] <= 1e-4
    frozen = load_frozen_model(directory)
    expected = convert_state_dict({key: value.numpy() for key, value in resnet8[0].items()}, 'resnet8')
    jax.tree.map(np.testing.assert_array_equal, frozen.variables, expected)

    with tfds.testing.mock_data(num_examples=EXAMPLES):
        summary = train_and_evaluate(config, str(tmp_path / 'student'))
    assert summary['epochs'] == 2 and 0 <= summary['teacher_top1'] <= 100

    converted = (directory / 'model.json').stat().st_mtime_ns
    again = shrink(cifar_distillation_config('kd', 'resnet8-wrn_16_1'))
    again.teacher.checkpoint = 'test:full'
    teachers.resolve_teacher(again)
    assert again.teacher.checkpoint == str(directory)
    assert registry.requests == {'cifar100_resnet8-full.pt': 1}
    assert (directory / 'model.json').stat().st_mtime_ns == converted
    assert sorted(os.listdir(tmp_path / 'cache' / 'test')) == ['.lock', 'cifar100_resnet8-full.pt', 'full']
    assert os.listdir(tmp_path / 'cache' / 'test' / 'full') == ['converted']


@pytest.fixture
def waits(monkeypatch):
    """pooch's waits before each new try of a failed download, recorded instead of slept (the
    only use of time in pooch.core); the main.py of test_no_network_is_one_line_within_seconds
    waits them."""
    recorded = []
    monkeypatch.setattr(pooch.core, 'time', SimpleNamespace(sleep=recorded.append))
    return recorded


@pytest.mark.parametrize('name, release', [('test:full', 'cifar100_resnet8-full.pt'),
                                           ('test:prefix', 'cifar100_resnet8-prefix.pt')])
def test_a_corrupted_file_is_refused_and_not_kept(name, release, registry, resnet8, tmp_path, waits):
    """Against the full sha256 and against the publisher's prefix: one line, nothing in the
    cache; pooch tries it again RETRIES times, as it would a cut connection."""
    content = bytearray(resnet8[1])
    content[len(content) // 2] ^= 1
    registry.files[release] = bytes(content)
    with pytest.raises(DataUnavailable) as raised:
        teachers.fetch_checkpoint(teachers.find_teacher(name))
    actual, digest = hashlib.sha256(content).hexdigest(), resnet8[2]
    expected = digest if name == 'test:full' else f'prefix {digest[:8]}'
    assert str(raised.value) == (
        f'{release} from {registry.url}/releases/download/{release} is not the published file: its sha256 is '
        f"{actual}, the registry's {expected}. It was refused and not kept; try again, or check the mirror "
        '(IJCKD_JAX_TEACHER_MIRROR).')
    assert registry.requests == {release: 1 + teachers.RETRIES}
    assert waits == [1, 2]  # seconds, before the second and the third try
    assert cached_files(tmp_path) == []


def test_a_connection_cut_halfway_leaves_nothing_and_the_next_try_succeeds(registry, resnet8, tmp_path, waits):
    registry.cut.add('cifar100_resnet8-prefix.pt')
    teacher = teachers.find_teacher('test:prefix')
    with pytest.raises(DataUnavailable, match=r'^Cannot download teacher test:prefix from .*cifar100_resnet8-prefix.pt '
                                              r'\(ChunkedEncodingError: .*IncompleteRead'):
        teachers.fetch_checkpoint(teacher)
    assert cached_files(tmp_path) == [] and waits == [1, 2]
    registry.cut.clear()
    path = teachers.fetch_checkpoint(teacher)
    assert path == str(tmp_path / 'cache' / 'test' / 'cifar100_resnet8-prefix.pt')
    assert teachers.sha256_of(path) == resnet8[2]
    assert registry.requests == {'cifar100_resnet8-prefix.pt': 1 + teachers.RETRIES + 1}


@pytest.mark.parametrize('mirror', ['/mirror', '/mirror/'])
def test_the_mirror_replaces_the_base_url(mirror, registry, resnet8, tmp_path, monkeypatch):
    monkeypatch.setenv(teachers.MIRROR_VARIABLE, registry.url + mirror)
    path = teachers.fetch_checkpoint(teachers.find_teacher('test:prefix'))
    assert registry.paths == ['/mirror/cifar100_resnet8-prefix.pt']
    assert teachers.sha256_of(path) == resnet8[2]


def test_two_processes_at_once_download_once(registry, resnet8, tmp_path):
    """Two processes ask for the same teacher at once (the server answers after 2 s, so that
    both are waiting): one downloads, the other waits for the lock and finds the file."""
    registry.delay = 2.0
    script = ('import sys\nfrom ijckd_jax import teachers\n'
              f'teachers.REGISTRY = {teachers.REGISTRY!r}\n'
              "print(teachers.fetch_checkpoint(teachers.find_teacher('test:prefix')))\n")
    processes = [subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, cwd=REPOSITORY) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    expected = str(tmp_path / 'cache' / 'test' / 'cifar100_resnet8-prefix.pt')
    assert [output.strip() for output, _ in outputs] == [expected, expected]
    assert registry.requests == {'cifar100_resnet8-prefix.pt': 1}
    assert teachers.sha256_of(expected) == resnet8[2]


def test_an_archive_is_downloaded_once_and_only_the_named_member_taken(registry, resnet8, tmp_path):
    """mdistiller's layout: two teachers of one tar download it once; each is its member alone,
    written under a name of ours; ijckd-convert takes the name."""
    archive, other = teachers.find_teacher('test:archive'), teachers.find_teacher('test:other')
    path = teachers.fetch_checkpoint(archive)
    assert path == str(tmp_path / 'cache' / 'test' / 'archive' / 'ckpt_epoch_240.pth')
    assert teachers.sha256_of(path) == archive.member_sha256
    assert teachers.sha256_of(teachers.fetch_checkpoint(other)) == resnet8[2]
    assert registry.requests == {'teachers.tar': 1}
    assert cached_files(tmp_path) == ['test/archive/ckpt_epoch_240.pth', 'test/other/ckpt.pth', 'test/teachers.tar']
    out = tmp_path / 'teacher'
    assert convert_command.main(['test:archive', '--out', str(out), '--verify']) == 0
    metadata = json.loads((out / 'model.json').read_text())
    assert (metadata['model'], metadata['source'], metadata['teacher']) == ('resnet8', path, 'test:archive')
    assert metadata['verify_max_abs_logit_difference'] <= 1e-4  # the converter's tolerance
    assert registry.requests == {'teachers.tar': 1}


def test_without_pytorch_a_named_teacher_is_one_line_and_its_download_is_kept(registry, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` fails, as where it is not installed
    with pytest.raises(DataUnavailable) as raised:
        teachers.converted_teacher(teachers.find_teacher('test:prefix'))
    path = tmp_path / 'cache' / 'test' / 'cifar100_resnet8-prefix.pt'
    assert str(raised.value) == (
        f'Teacher test:prefix is a PyTorch checkpoint ({path}), which takes PyTorch to read: pip install -r '
        'requirements-torch.txt, or convert it where PyTorch is installed (ijckd-convert test:prefix --out DIR) and '
        'pass --config.teacher.checkpoint=DIR.')
    assert cached_files(tmp_path) == ['test/cifar100_resnet8-prefix.pt']


def test_a_member_that_is_not_the_recorded_one_is_refused_and_not_kept(registry, resnet8, tmp_path):
    registry.files['teachers.tar'] = archive_bytes({MEMBER: resnet8[1]})  # a plain state dict: another file
    with pytest.raises(DataUnavailable, match=rf'^{MEMBER} of .*teachers.tar is not the published file: its '
                                              rf'sha256 is {resnet8[2]}, the registry'):
        teachers.fetch_checkpoint(teachers.find_teacher('test:archive'))
    assert cached_files(tmp_path) == ['test/teachers.tar']


@pytest.mark.quick
def test_an_unknown_name_lists_the_known_ones_and_another_model_is_refused_before_any_download(
        registry, tmp_path, capsys):
    config = shrink(cifar_distillation_config('kd', 'resnet8-wrn_16_1'))
    config.teacher.checkpoint = 'test:ful'
    with pytest.raises(ConfigError) as raised:
        teachers.resolve_teacher(config)
    assert str(raised.value) == ("config.teacher.checkpoint='test:ful': No teacher is named 'test:ful'. Did you mean "
                                 "'test:full'? The known teachers (ijckd-teachers describes them): test:full, "
                                 'test:prefix, test:archive, test:other.')
    assert convert_command.main(['test:ful', '--out', str(tmp_path / 'out')]) == 1
    assert capsys.readouterr().err.splitlines() == [f'error: {str(raised.value).split(": ", 1)[1]}']
    config.teacher.checkpoint, config.teacher.model = 'test:full', 'resnet20'
    with pytest.raises(ConfigError) as raised:
        teachers.resolve_teacher(config)
    assert str(raised.value) == ("config.teacher.checkpoint='test:full' is resnet8 trained on cifar100 (100 classes), "
                                 'but the config asks for resnet20 with 100 classes; pass '
                                 '--config.teacher.model=resnet8, or another teacher.')
    config.teacher.model, config.data.num_classes = 'resnet8', 10
    with pytest.raises(ConfigError) as raised:
        teachers.resolve_teacher(config)
    assert str(raised.value) == ("config.teacher.checkpoint='test:full' is resnet8 trained on cifar100 (100 classes), "
                                 'but the config asks for resnet8 with 10 classes; pass --config.teacher.model=resnet8 '
                                 'and its data set (--config.data.dataset=cifar100 --config.data.num_classes=100; a '
                                 "CIFAR config's variant sets both with data=cifar100), or another teacher.")
    assert registry.requests == {} and not (tmp_path / 'cache').exists() and not (tmp_path / 'out').exists()


def closed_port():
    """A port of 127.0.0.1 that nothing listens on: a connection to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def test_no_network_is_one_line_within_seconds(tmp_path, monkeypatch, waits):
    """The published registry's teacher, its mirror an address that refuses connections: one
    line naming the URL and the two ways on, after pooch's two retries (waits of 1 + 2 s,
    recorded here; main.py waits them). main.py prints it within seconds, before any work: the
    bound, 15 s, leaves room for a loaded 2-core machine (a refused connection fails at once);
    its workdir is not created."""
    mirror = f'http://127.0.0.1:{closed_port()}/teachers/'
    monkeypatch.setenv(teachers.CACHE_VARIABLE, str(tmp_path / 'cache'))
    monkeypatch.setenv(teachers.MIRROR_VARIABLE, mirror)
    url = f'{mirror}cifar100_resnet56-f2eff4c8.pt'
    expected = (f'Cannot download teacher chenyaofo:cifar100_resnet56 from {url} (ConnectionError: ')
    ways = ('). Either download cifar100_resnet56-f2eff4c8.pt elsewhere and convert it: ijckd-convert PATH --arch '
            'resnet56 --out DIR, then pass --config.teacher.checkpoint=DIR; or serve cifar100_resnet56-f2eff4c8.pt '
            'from a server you reach and set IJCKD_JAX_TEACHER_MIRROR=http://HOST/PATH/ (the file at '
            'http://HOST/PATH/cifar100_resnet56-f2eff4c8.pt).')
    with pytest.raises(DataUnavailable) as raised:
        teachers.fetch_checkpoint(teachers.find_teacher('chenyaofo:cifar100_resnet56'))
    assert waits == [1, 2]
    message = str(raised.value)
    assert message.startswith(expected) and message.endswith(ways) and '\n' not in message
    assert cached_files(tmp_path) == []

    start = time.monotonic()
    result = subprocess.run([sys.executable, os.path.join(REPOSITORY, 'main.py'), '--config',
                             os.path.join(REPOSITORY, 'configs', 'cifar_ijckd.py:resnet56-resnet20'),
                             '--config.teacher.checkpoint=chenyaofo:cifar100_resnet56', '--workdir',
                             str(tmp_path / 'run')], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert time.monotonic() - start < 15
    assert result.returncode == 1 and errors == [f'error: {message}'], result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == errors[0] and 'Traceback' not in result.stderr
    assert not (tmp_path / 'run').exists()


@pytest.mark.quick
def test_the_normalisation_the_teacher_was_trained_with_is_named_where_the_config_differs(caplog):
    """CIFAR-10's statistics against the CIFAR-100 teacher's: one warning with the flags; the
    publishers' roundings of CIFAR-100's statistics (≤ 2e-4 apart): none."""
    teacher = teachers.find_teacher('chenyaofo:cifar100_resnet56')
    cifar10 = ml_collections.ConfigDict(dict(mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.201)))
    with caplog.at_level('WARNING'):
        teachers.warn_of_normalisation(teacher, ml_collections.ConfigDict(CIFAR100))
        assert caplog.messages == []
        teachers.warn_of_normalisation(teacher, cifar10)
    assert caplog.messages == [
        'Teacher chenyaofo:cifar100_resnet56 was trained on images normalised with mean (0.507, 0.4865, 0.4409) and '
        'std (0.2673, 0.2564, 0.2761), but config.data has mean (0.4914, 0.4822, 0.4465) and std (0.2023, 0.1994, '
        '0.201); pass --config.data.mean=0.507,0.4865,0.4409 --config.data.std=0.2673,0.2564,0.2761 to give it what '
        'it was trained on.']


@pytest.mark.quick
def test_the_list_names_each_teacher_with_what_the_cache_holds(registry, tmp_path, capsys):
    """ijckd-teachers: no, downloaded (its size the cached file's) and converted."""
    source = tmp_path / 'cache' / 'test'
    (source / 'full' / 'converted').mkdir(parents=True)
    (source / 'full' / 'converted' / 'model.json').write_text('{}')
    (source / 'cifar100_resnet8-prefix.pt').write_bytes(b'0' * 3 * 2**19)
    assert teachers_command.main([]) == 0
    assert capsys.readouterr().out.splitlines() == [
        '| name         | model   | classes | stated top-1 | source          |    size | cached     |',
        '|--------------|---------|--------:|-------------:|-----------------|--------:|------------|',
        '| test:full    | resnet8 |     100 |         1.00 | ijckd-jax/tests |       ? | converted  |',
        '| test:prefix  | resnet8 |     100 |         1.00 | ijckd-jax/tests | 1.5 MiB | downloaded |',
        '| test:archive | resnet8 |     100 |         1.00 | ijckd-jax/tests |       ? | no         |',
        '| test:other   | resnet8 |     100 |         1.00 | ijckd-jax/tests |       ? | no         |',
        '',
        f'Cache: {tmp_path / "cache"} (set IJCKD_JAX_TEACHER_CACHE to move it). Where each figure comes from: '
        f'{teachers.REGISTRY}.']
    assert registry.requests == {}


@pytest.mark.quick
def test_the_published_registry_names_zoo_models_and_the_publishers_sha256_prefixes():
    """Each published teacher's model exists with its class count and normalisation; each
    chenyaofo and torchvision file name carries its sha256 prefix; a full sha256 begins with it."""
    from ijckd_jax.models import MODELS

    registry = teachers.read_registry()
    assert len(registry) == 17
    for teacher in registry.values():
        assert teacher.model in MODELS
        assert (teacher.dataset, teacher.num_classes) in (('cifar10', 10), ('cifar100', 100), ('imagenet2012', 1000))
        assert teacher.name.split(':')[1].split('_')[0] == {'imagenet2012': 'imagenet'}.get(teacher.dataset,
                                                                                           teacher.dataset)
        assert len(teacher.mean) == len(teacher.std) == 3 and 0 < teacher.top1 < 100
        if teacher.sha256_prefix:
            assert f'-{teacher.sha256_prefix}.' in teacher.release_file
        if teacher.sha256:
            assert teacher.sha256.startswith(teacher.sha256_prefix) and len(teacher.sha256) == 64
