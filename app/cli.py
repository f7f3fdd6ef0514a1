"""`lifeline` command line: serve, migrate, back up, and manage API keys."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from sqlalchemy import make_url, select
from sqlalchemy.orm import Session

from app import backup, migrate
from app.auth import ROLES, create_key, limit_key, revoke_key
from app.db import make_engine, make_sessionmaker
from app.settings import get_settings
from app.tables import ApiKey


def _sessions():  # type: ignore[no-untyped-def]
    return make_sessionmaker(make_engine(get_settings().database_url))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app import logs
    from app.main import create_app

    s = get_settings()
    uvicorn.run(create_app(s), host=args.host or s.host, port=args.port or s.port,
                log_config=logs.config(s), access_log=False)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    url = get_settings().database_url
    if args.down:
        migrate.downgrade(url, args.revision or "base")
    else:
        migrate.upgrade(url, args.revision or "head")
    print(f"migrated {url.split('@')[-1]} to {args.revision or ('base' if args.down else 'head')}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """A copy of the embedded database without the fresh buffer's raw windows, so that a backup
    keeps the retention promise; the service may run meanwhile (SQLite's online backup)."""
    url = make_url(get_settings().database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        print("lifeline backup copies the embedded SQLite database; on PostgreSQL run pg_dump "
              "--exclude-table-data=buffer_windows (a start after the restore recounts the "
              "buffers)", file=sys.stderr)
        return 2
    out = Path(args.path)
    if out.exists():
        print(f"lifeline backup: {out} exists; name a new file", file=sys.stderr)
        return 2
    windows = backup.copy_without_buffer(Path(url.database), out)
    print(f"backed up {url.database} to {out}, without its {windows} buffered windows")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    migrate.upgrade(get_settings().database_url)
    with _sessions()() as s:
        if args.action == "create":
            try:
                row, key = create_key(s, role=args.role, name=args.name or args.role,
                                      actor=_actor(), lines=args.line)
            except ValueError as exc:
                print(f"lifeline keys create: {exc}", file=sys.stderr)
                return 2
            s.commit()
            print(f"created key {row.id} ({row.role}, {row.name}, {_scope(row)}); "
                  "store it now, it is not shown again:")
            print(key)
        elif args.action == "list":
            for k in s.scalars(select(ApiKey).order_by(ApiKey.id)):
                state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
                used = f"used {k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "unused"
                print(f"{k.id}\t{k.role}\t{k.name}\t{k.prefix}...\t{state}\t{used}\t"
                      f"{_scope(k)}")
        elif args.action == "limit":
            return _limit(s, args)
        else:
            if not revoke_key(s, args.key_id, actor=_actor()):
                print(f"no active key {args.key_id}", file=sys.stderr)
                return 1
            s.commit()
            print(f"revoked key {args.key_id}")
    return 0


def _limit(s: Session, args: argparse.Namespace) -> int:
    lines = None if args.every_line else args.line
    try:
        row = limit_key(s, args.key_id, lines=lines, actor=_actor())
    except ValueError as exc:
        print(f"lifeline keys limit: {exc}", file=sys.stderr)
        return 2
    if row is None:
        print(f"no active key {args.key_id}", file=sys.stderr)
        return 1
    scope = _scope(row)
    s.commit()
    print(f"key {args.key_id} may now post to {scope}; every replica applies it within seconds")
    return 0


def _scope(k: ApiKey) -> str:
    return "every line" if k.lines is None else "lines " + ",".join(k.lines)


def _actor() -> str:
    """Who ran the command: keys are managed on the server's host, not through a key."""
    return f"cli:{getpass.getuser()}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lifeline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)
    mig = sub.add_parser("migrate", help="upgrade (or --down) the database schema")
    mig.add_argument("revision", nargs="?")
    mig.add_argument("--down", action="store_true")
    mig.set_defaults(func=cmd_migrate)
    back = sub.add_parser("backup", help="copy the embedded database, without raw windows")
    back.add_argument("path")
    back.set_defaults(func=cmd_backup)
    keys = sub.add_parser("keys", help="create, list, limit or revoke API keys")
    ksub = keys.add_subparsers(dest="action", required=True)
    create = ksub.add_parser("create")
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--name")
    create.add_argument("--line", action="append", metavar="LINE_ID",
                        help="a gateway key may post to this line only (repeat for several); "
                             "without it, to every line")
    ksub.add_parser("list")
    limit = ksub.add_parser("limit", help="limit an existing gateway key to lines, or lift it")
    limit.add_argument("key_id", type=int)
    which = limit.add_mutually_exclusive_group(required=True)
    which.add_argument("--line", action="append", metavar="LINE_ID")
    which.add_argument("--every-line", action="store_true")
    rev = ksub.add_parser("revoke")
    rev.add_argument("key_id", type=int)
    keys.set_defaults(func=cmd_keys)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except migrate.NewerDatabase as exc:  # a release rolled back over a newer schema
        print(f"lifeline {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
