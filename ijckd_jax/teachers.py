"""Teachers by name: the field's published teachers, fetched, checked, converted and cached.

    python main.py --config configs/cifar_ijckd.py:resnet56-resnet20 \
        --config.teacher.checkpoint=chenyaofo:cifar100_resnet56 --workdir runs/ijckd
    ijckd-convert chenyaofo:cifar100_resnet56 --out teachers/resnet56 --verify
    ijckd-teachers

The registry (teachers.json, shipped with the package) records each teacher's URL, its sha256,
the zoo model and class count it converts to exactly, its normalisation and its stated top-1,
with where each comes from. pooch downloads a release file once into
CACHE/SOURCE/RELEASE_FILE (CACHE: ~/.cache/ijckd_jax/teachers, or IJCKD_JAX_TEACHER_CACHE),
writing a temporary file that it renames into place only once its sha256 is checked; the
teacher converted from it, checked against PyTorch where PyTorch is installed, is kept in
CACHE/SOURCE/NAME/converted, so that the second use downloads and converts nothing. One
process at a time fetches and converts a source's teachers (a lock file in CACHE/SOURCE).
IJCKD_JAX_TEACHER_MIRROR=http://host/path/ replaces every source's base URL.
"""
import contextlib
import difflib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import sys
import tarfile
from typing import NamedTuple, Optional, Tuple

from absl import logging

from ijckd_jax import files
from ijckd_jax.errors import ConfigError, DataUnavailable

REGISTRY = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'teachers.json')
CACHE_VARIABLE = 'IJCKD_JAX_TEACHER_CACHE'
MIRROR_VARIABLE = 'IJCKD_JAX_TEACHER_MIRROR'
DEFAULT_CACHE = os.path.join('~', '.cache', 'ijckd_jax', 'teachers')
CONVERTED = 'converted'
NAME = re.compile(r'[A-Za-z0-9_]+:[A-Za-z0-9_.]+')
# pooch tries a failed download this many more times, after 1 s, then 2 s.
RETRIES = 2
# requests' (connect, read) timeouts in seconds: an address that does not answer fails in 10 s
# a try, a server that stops sending in a minute.
TIMEOUT = (10, 60)
# The normalisation a teacher was trained with, against the config's: the publishers' CIFAR-100
# statistics are the same numbers rounded differently (≤ 2e-4 apart), which changes nothing.
NORMALISATION_TOLERANCE = 1e-3


class Teacher(NamedTuple):
    """One entry of the registry (teachers.json says where each value comes from)."""
    name: str
    url: str
    sha256: Optional[str]  # the full digest, where established
    sha256_prefix: Optional[str]  # the prefix in the publisher's file name
    model: str
    dataset: str  # the tfds name of the data set it was trained on
    num_classes: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    top1: float
    size_mib: Optional[float]  # the release file's size, in MiB
    publisher: str  # the publisher's repository
    member: Optional[str] = None  # the file inside the archive at url
    member_sha256: Optional[str] = None

    @property
    def source(self):
        return self.name.split(':')[0]

    @property
    def release_file(self):
        return self.url.rsplit('/', 1)[1]


def read_registry():
    """{name: Teacher} of the registry."""
    with open(REGISTRY) as file:
        registry = json.load(file)
    return {name: Teacher(name=name, publisher=registry['sources'][name.split(':')[0]]['publisher'],
                          **{**entry, 'mean': tuple(entry['mean']), 'std': tuple(entry['std'])})
            for name, entry in registry['teachers'].items()}


def is_teacher_name(value):
    """Whether `value` is SOURCE:NAME rather than a path (a file or folder that exists is a path)."""
    return isinstance(value, str) and bool(NAME.fullmatch(value)) and not os.path.exists(value)


def find_teacher(name) -> Teacher:
    """The registry's teacher `name`; an unknown name is refused, listing the known ones."""
    registry = read_registry()
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, registry, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ''
    raise ConfigError(f"No teacher is named '{name}'.{hint} The known teachers (ijckd-teachers describes them): "
                      f"{', '.join(registry)}.")


def cache_directory():
    return os.path.abspath(os.path.expanduser(os.environ.get(CACHE_VARIABLE) or DEFAULT_CACHE))


def source_directory(teacher):
    return os.path.join(cache_directory(), teacher.source)


def teacher_directory(teacher):
    """CACHE/SOURCE/NAME: the teacher's own files (an archive's member, the converted model)."""
    return os.path.join(source_directory(teacher), teacher.name.split(':', 1)[1])


def converted_directory(teacher):
    return os.path.join(teacher_directory(teacher), CONVERTED)


def download_url(teacher):
    """The teacher's URL, or the mirror's where IJCKD_JAX_TEACHER_MIRROR names one."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    return f"{mirror.rstrip('/')}/{teacher.release_file}" if mirror else teacher.url


def cached_state(teacher):
    """'converted', 'downloaded' or 'no': how much of the teacher the cache holds."""
    if os.path.isfile(os.path.join(converted_directory(teacher), 'model.json')):
        return 'converted'
    if os.path.isfile(os.path.join(source_directory(teacher), teacher.release_file)):
        return 'downloaded'
    return 'no'


@contextlib.contextmanager
def only_one_process(directory):
    """Holds the lock file of `directory`: one process at a time downloads and converts there."""
    try:
        os.makedirs(directory, exist_ok=True)
        lock = open(os.path.join(directory, '.lock'), 'w')
    except OSError as error:
        raise DataUnavailable(f'The teacher cache {directory} cannot be written ({error}); set {CACHE_VARIABLE} '
                              'to a writable folder.') from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


class DigestMismatch(ValueError):
    """A downloaded file is not the published one (a ValueError, so that pooch retries it)."""


def check_digest(path, expected, what):
    """Raises DigestMismatch unless the sha256 of `path` is (or begins with) `expected`."""
    digest = sha256_of(path)
    if not digest.startswith(expected):
        raise DigestMismatch(f'{what} is not the published file: its sha256 is {digest}, the registry\'s '
                             f'{"" if len(expected) == 64 else "prefix "}{expected}. It was refused and not kept; '
                             'try again, or check the mirror (IJCKD_JAX_TEACHER_MIRROR).')


def show_progress():
    """pooch's progress bar where stderr is a terminal and tqdm is installed, else none."""
    return sys.stderr.isatty() and importlib.util.find_spec('tqdm') is not None


def checked_downloader(teacher, url):
    """pooch's HTTP download of `url`, the temporary file then checked against the registry's
    sha256 (full or prefix), so that a file that differs is never renamed into the cache."""
    import pooch

    download = pooch.HTTPDownloader(progressbar=show_progress(), timeout=TIMEOUT)

    def checked(address, output_file, fetcher):
        download(address, output_file, fetcher)
        expected = teacher.sha256 or teacher.sha256_prefix
        if expected:
            check_digest(output_file, expected, f'{teacher.release_file} from {url}')
    return checked


def unreachable(teacher, url, error):
    """The one line for a download that failed: the URL and the two ways on."""
    reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
    taken = f', take {teacher.member} out of it' if teacher.member else ''
    return DataUnavailable(
        f'Cannot download teacher {teacher.name} from {url} ({type(error).__name__}: {reason}). Either download '
        f'{teacher.release_file} elsewhere{taken} and convert it: ijckd-convert PATH --arch {teacher.model} '
        f'--out DIR, then pass --config.teacher.checkpoint=DIR; or serve {teacher.release_file} from a server you '
        f'reach and set {MIRROR_VARIABLE}=http://HOST/PATH/ (the file at http://HOST/PATH/{teacher.release_file}).')


def download(teacher):
    """The teacher's release file in CACHE/SOURCE, downloaded by pooch if it is not there."""
    import pooch
    import requests

    url = download_url(teacher)
    fetcher = pooch.create(path=source_directory(teacher), base_url='', retry_if_failed=RETRIES,
                           registry={teacher.release_file: teacher.sha256}, urls={teacher.release_file: url})
    try:
        return fetcher.fetch(teacher.release_file, downloader=checked_downloader(teacher, url))
    except DigestMismatch as error:
        raise DataUnavailable(str(error)) from None
    except requests.RequestException as error:
        raise unreachable(teacher, url, error) from None


def extract_member(teacher, archive):
    """The archive's member that is the teacher, written whole to CACHE/SOURCE/NAME (only that
    member, under a name of ours: nothing in the archive chooses where anything is written)."""
    destination = os.path.join(teacher_directory(teacher), os.path.basename(teacher.member))
    if os.path.isfile(destination):
        return destination
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    temporary = f'{destination}.{files.HOST}-{os.getpid()}.tmp'
    try:
        with tarfile.open(archive) as tar:
            member = tar.getmember(teacher.member)
            if not member.isfile():
                raise KeyError(teacher.member)
            with tar.extractfile(member) as source, open(temporary, 'wb') as target:
                for block in iter(lambda: source.read(1 << 20), b''):
                    target.write(block)
        if teacher.member_sha256:
            check_digest(temporary, teacher.member_sha256, f'{teacher.member} of {archive}')
        os.replace(temporary, destination)
    except KeyError:
        raise DataUnavailable(f'{archive} has no file {teacher.member}: it is not the archive the registry '
                              f'names; remove it to download it again.') from None
    except (tarfile.TarError, EOFError) as error:
        raise DataUnavailable(f'{archive} is not a readable tar archive ({error}); remove it to download it '
                              'again.') from None
    except DigestMismatch as error:
        raise DataUnavailable(str(error)) from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return destination


def fetch_unlocked(teacher):
    archive_or_file = download(teacher)
    return extract_member(teacher, archive_or_file) if teacher.member else archive_or_file


def fetch_checkpoint(teacher):
    """The path of the teacher's PyTorch checkpoint in the cache, downloaded (and taken from its
    archive) the first time."""
    with only_one_process(source_directory(teacher)):
        return fetch_unlocked(teacher)


def torch_installed():
    try:
        return importlib.util.find_spec('torch') is not None
    except ImportError:
        return False


def converted_teacher(teacher):
    """CACHE/SOURCE/NAME/converted: the teacher as a saved Flax model, downloaded and converted
    the first time (with the converter's --verify where PyTorch is installed, its figure
    recorded in model.json), by one process at a time."""
    from ijckd_jax.convert import ConversionError, convert_checkpoint

    directory = converted_directory(teacher)
    if cached_state(teacher) == 'converted':
        return directory
    with only_one_process(source_directory(teacher)):
        if cached_state(teacher) == 'converted':  # another process converted it meanwhile
            return directory
        checkpoint = fetch_unlocked(teacher)
        try:
            convert_checkpoint(checkpoint, directory, teacher.model, teacher.num_classes, verify=torch_installed(),
                               record={'teacher': teacher.name, 'url': teacher.url})
        except ConversionError as error:
            raise DataUnavailable(f'Teacher {teacher.name} ({checkpoint}) does not convert: {error}') from None
        except ModuleNotFoundError as error:
            if error.name != 'torch':
                raise
            raise DataUnavailable(f'Teacher {teacher.name} is a PyTorch checkpoint ({checkpoint}), which takes '
                                  'PyTorch to read: pip install -r requirements-torch.txt, or convert it where '
                                  f'PyTorch is installed (ijckd-convert {teacher.name} --out DIR) and pass '
                                  '--config.teacher.checkpoint=DIR.') from None
    return directory


def warn_of_normalisation(teacher, data):
    """One line where the config feeds the teacher otherwise normalised images than it was
    trained on: it works, but the teacher sees shifted inputs."""
    differences = [abs(ours - theirs) for ours, theirs in zip((*data.mean, *data.std), (*teacher.mean, *teacher.std))]
    if max(differences) > NORMALISATION_TOLERANCE:
        logging.warning('Teacher %s was trained on images normalised with mean %s and std %s, but config.data has '
                        'mean %s and std %s; pass --config.data.mean=%s --config.data.std=%s to give it what it '
                        'was trained on.', teacher.name, teacher.mean, teacher.std, tuple(data.mean), tuple(data.std),
                        ','.join(map(str, teacher.mean)), ','.join(map(str, teacher.std)))


def resolve_teacher(config):
    """Where config.teacher.checkpoint names a teacher of the registry (SOURCE:NAME), puts its
    converted directory in its place, downloading and converting it the first time. The
    teacher's model and class count are checked against the config before any download."""
    name = config.teacher.checkpoint if 'teacher' in config else ''
    if not is_teacher_name(name):
        return
    try:
        teacher = find_teacher(name)
    except ConfigError as error:
        raise ConfigError(f"config.teacher.checkpoint='{name}': {error}") from None
    if (teacher.model, teacher.num_classes) != (config.teacher.model, config.data.num_classes):
        data_fix = '' if teacher.num_classes == config.data.num_classes else (
            f' and its data set (--config.data.dataset={teacher.dataset} --config.data.num_classes='
            f'{teacher.num_classes}' + (f"; a CIFAR config's variant sets both with data={teacher.dataset})"
                                        if teacher.dataset in ('cifar10', 'cifar100') else ')'))
        raise ConfigError(f"config.teacher.checkpoint='{name}' is {teacher.model} trained on {teacher.dataset} "
                          f'({teacher.num_classes} classes), but the config asks for {config.teacher.model} with '
                          f'{config.data.num_classes} classes; pass --config.teacher.model={teacher.model}{data_fix}, '
                          'or another teacher.')
    warn_of_normalisation(teacher, config.data)
    config.teacher.checkpoint = converted_teacher(teacher)
