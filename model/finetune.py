"""Siamese fine-tuning of the face embedder (placeholder until it lands)."""

import argparse


def register_commands(commands: "argparse._SubParsersAction") -> None:
    """Adds `finetune` and `export` to `python -m model faces`."""
