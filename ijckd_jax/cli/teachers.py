"""Lists the published teachers that --config.teacher.checkpoint and ijckd-convert take by name.
(tools/teachers.py is the same program.)

    ijckd-teachers

One row per teacher: its name, the zoo model and class count it converts to, its publisher's
stated top-1, the publisher, the download's size (the cached file's, else the stated one; ?
where none is stated) and how much of it the cache holds (no, downloaded or converted). The
cache is ~/.cache/ijckd_jax/teachers unless IJCKD_JAX_TEACHER_CACHE names another folder.
"""
import argparse
import os
import sys

from ijckd_jax import teachers
from ijckd_jax.report.tables import markdown


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n', 2)[2])
    return parser.parse_args(argv)


def download_size(teacher):
    """The release file's size in MiB: the cached file's, else the stated one, else '?'."""
    path = os.path.join(teachers.source_directory(teacher), teacher.release_file)
    size = os.path.getsize(path) / 2**20 if os.path.isfile(path) else teacher.size_mib
    return '?' if size is None else f'{size:.1f} MiB'


def describe_teachers(registry):
    """The Markdown table of the registry's teachers."""
    header = ('name', 'model', 'classes', 'stated top-1', 'source', 'size', 'cached')
    right_aligned = (False, False, True, True, False, True, False)
    return markdown(header, right_aligned, [
        (teacher.name, teacher.model, str(teacher.num_classes), f'{teacher.top1:.2f}', teacher.publisher,
         download_size(teacher), teachers.cached_state(teacher)) for teacher in registry.values()])


def main(argv=None):
    parse_arguments(argv)
    print(describe_teachers(teachers.read_registry()))
    print(f'\nCache: {teachers.cache_directory()} (set {teachers.CACHE_VARIABLE} to move it). Where each figure '
          f'comes from: {teachers.REGISTRY}.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
