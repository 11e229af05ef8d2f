"""Placeholder: the Omniglot sub-commands are registered here (train|eval|baseline|plot)."""

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=lambda args: parser.error("not implemented yet"))
