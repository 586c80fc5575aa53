"""Files written whole, and what a killed process leaves behind.

A directory is written into a hidden sibling named after its host and process, then renamed
into place; a sibling whose process is gone was left by a kill and is removed the next time.
"""
import json
import os
import re
import shutil
import socket

HOST = socket.gethostname()
KINDS = ('staging', 'replaced')  # a directory being written; one being replaced


def process_alive(pid):
    """Whether process `pid` of this host still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def staging_path(directory, kind='staging'):
    """The hidden sibling of `directory` that this process writes (`kind` tells its use)."""
    parent, name = os.path.split(os.path.abspath(directory))
    return os.path.join(parent, f'.{name}.{kind}-{HOST}-{os.getpid()}')


def remove_abandoned(directory):
    """Removes the hidden siblings of `directory` that killed processes of this host left."""
    parent, name = os.path.split(os.path.abspath(directory))
    if not os.path.isdir(parent):
        return
    pattern = re.compile(rf'\.{re.escape(name)}\.({"|".join(KINDS)})-{re.escape(HOST)}-(\d+)')
    for entry in os.listdir(parent):
        match = pattern.fullmatch(entry)
        if match and not process_alive(int(match.group(2))):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def write_json(path, content):
    """Writes JSON through a temporary file, so that a reader never sees half of it."""
    temporary = f'{path}.{HOST}-{os.getpid()}.tmp'
    with open(temporary, 'w') as file:
        json.dump(content, file, indent=2)
    os.replace(temporary, path)
