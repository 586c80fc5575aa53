"""Writes a prepared copy of an image folder for fast streaming: every image at most
--max-side pixels on its longer side, as JPEG (ijckd_jax/data/prepare.py says what it changes).

    ijckd-prepare SOURCE DESTINATION --max-side 320

SOURCE holds train/<class>/<image> and val/<class>/<image> (or test/); DESTINATION must not
exist. Train on the copy with --config.data.dataset=DESTINATION.
"""
import argparse
import sys

from ijckd_jax.data.prepare import PrepareError, prepare_folder


def parse_arguments(argv):
    description, epilog = __doc__.split('\n\n', 1)  # the first paragraph, whole: its sentence wraps
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('source', metavar='SOURCE', help='an image folder: train/<class>/<image> and val/ or test/')
    parser.add_argument('destination', metavar='DESTINATION', help='where the copy is written; must not exist')
    parser.add_argument('--max-side', type=int, required=True,
                        help="the longest side of every image of the copy, in pixels (320 for 224-pixel crops)")
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality of re-encoded images (default 95)')
    parser.add_argument('--keep-evaluation', action='store_true',
                        help='copy val/ (or test/) as it is, so that the evaluation is the paper\'s protocol')
    parser.add_argument('--workers', type=int, default=None, help='processes (default: every core)')
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(argv)
    try:
        manifest = prepare_folder(arguments.source, arguments.destination, arguments.max_side,
                                  arguments.quality, arguments.workers, arguments.keep_evaluation)
    except PrepareError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    skipped = len(manifest['unreadable'])
    print(f"wrote {manifest['images']:,} images to {arguments.destination}"
          + (f", skipped {skipped:,} unreadable (listed in its prepared.json)" if skipped else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
