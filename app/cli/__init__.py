"""Operator commands that talk to a running service over HTTP."""
