"""`python -m model omniglot ...` and `python -m model faces ...`.

Each family registers its own sub-commands, so the two trainers share nothing but
this entry point.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from model.faces import cli as faces_cli
    from model.omniglot import cli as omniglot_cli

    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    families = parser.add_subparsers(dest="family", required=True)
    omniglot_cli.register(families.add_parser("omniglot", help="Koch et al. (2015) on Omniglot"))
    faces_cli.register(families.add_parser("faces", help="face embedder: fine-tune, threshold, export"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
