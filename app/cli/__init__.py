"""Operator commands of `python -m app`: keys (database), enroll-dir (over HTTP), and what
`serve` prints while it starts."""
