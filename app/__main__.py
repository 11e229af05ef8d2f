"""Operator commands: `python -m app serve|migrate|models|keys|create-key|enroll-dir`."""

from __future__ import annotations

import argparse
import sys

from app.cli import keys as keys_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="Face verification service")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (run `migrate` first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    commands.add_parser("migrate", help="bring the database schema to the latest revision")
    keys_cli.add_commands(commands)
    from app.cli import enroll_dir, models as models_cli

    models_cli.add_parser(commands)

    enroll_dir.add_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "enroll-dir":  # an HTTP client: no settings, no database
        return enroll_dir.run(args)

    from app.core.config import load_settings
    from app.core.telemetry import configure_logging

    settings = load_settings()
    if args.command == "migrate":
        from app.core.migrate import upgrade
        from app.inference.artifacts import load_artifact

        artifact = load_artifact(settings.model_dir())
        upgrade(settings.database_url, embedding_width=(artifact.embedding_dim, artifact.model_version))
        print(f"database at the latest schema: {_redact(settings.database_url)}")
        return 0
    if args.command == "models":
        return models_cli.run(settings, args)
    if args.command in ("keys", "create-key"):
        return keys_cli.run(settings, args)

    import uvicorn

    from app.core.cpu import check_cpu

    check_cpu()
    import faulthandler

    faulthandler.enable()  # a fatal signal is reported with the Python stack, not a silent exit
    configure_logging(settings.log_level, settings.log_json)
    from app.cli.quiet import silence_third_party_noise
    from app.cli.serve_progress import report_progress

    if settings.log_level != "DEBUG":
        silence_third_party_noise()
    from app.main import create_app
    from app.startup import preflight

    problem = preflight(settings)
    if problem:
        print(f"cannot start: {problem}", file=sys.stderr)
        return 2

    from app.api.connections import protocol_for, raise_open_files_limit

    app = create_app(settings)
    report_progress(app, args.host, args.port)
    raise_open_files_limit()
    # The client address (failed-key budget, body share, logs) is the connecting one unless
    # FACEAPI_FORWARDED_ALLOW_IPS names a proxy in front: uvicorn's default took X-Forwarded-For
    # from any local client, so one could dodge the wrong-key limit with a made-up address
    trusted = settings.forwarded_allow_ips
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, timeout_graceful_shutdown=30,
                http=protocol_for(settings), proxy_headers=bool(trusted),
                forwarded_allow_ips=trusted or None)
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
