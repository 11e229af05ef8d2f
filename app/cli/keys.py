"""`python -m app keys create|list|revoke` (and the older `create-key`): API keys for operators.

A new key is printed once, on the last line of the output; only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import sys

from app.core.security import Role


def add_commands(commands) -> None:
    keys = commands.add_parser("keys", help="create, list or revoke API keys")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="create a key; printed once, on the last line")
    create.add_argument("--role", choices=[r.value for r in Role], required=True)
    create.add_argument("--if-none", action="store_true",
                        help="only if no active key of this role exists (a first-run step)")
    listing = sub.add_parser("list", help="prefix, role, created, last used (never the key)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = sub.add_parser("revoke", help="revoke a key by its listed prefix; effective at once")
    revoke.add_argument("prefix")
    alias = commands.add_parser("create-key", help="same as `keys create`")
    alias.add_argument("--role", choices=[r.value for r in Role], required=True)


def run(settings, args: argparse.Namespace) -> int:
    from app.core.db import make_engine
    from app.core.migrate import current_revision, head_revision
    from app.storage.keys import ApiKeyStore, KeyNotFound

    engine = make_engine(settings.database_url)
    try:
        if current_revision(engine) != head_revision():
            print("the database is not migrated: run `python -m app migrate` first", file=sys.stderr)
            return 2
        store = ApiKeyStore(engine)
        command = "create" if args.command == "create-key" else args.keys_command
        if command == "create":
            role = Role(args.role)
            if getattr(args, "if_none", False) and store.count_active(role):
                print(f"an active {role.value} key exists; no new key was made "
                      f"(`python -m app keys list` shows it)")
                return 0
            key = store.create(role)
            print(f"New {role.value} API key (shown once; send it as the X-API-Key header):")
            print(key)
        elif command == "list":
            print(f"{'prefix':<14}{'role':<8}{'created':<22}{'last used':<22}revoked")
            for k in store.list(include_revoked=args.all):
                print(f"{k.prefix:<14}{k.role:<8}{_when(k.created_at):<22}{_when(k.last_used_at):<22}"
                      f"{_when(k.revoked_at)}")
        else:
            try:
                k = store.revoke(args.prefix)
            except KeyNotFound as exc:
                print(exc, file=sys.stderr)
                return 1
            print(f"revoked the {k.role} key {k.prefix}; it is refused from the next request on")
        return 0
    finally:
        engine.dispose()


def _when(t) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t is not None else "-"
