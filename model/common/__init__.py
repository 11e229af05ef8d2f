"""What both trainers share: config base with CLI overrides, metrics, losses, paths."""
