"""The `showroom` command: serve, migrate, seed-demo, create-token, import-products."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from server.collector import COLLECTOR
from server.config import Settings, SettingsError
from server.domain.errors import DomainError
from server.services import catalog, demo, identity
from server.services.identity import Role
from server.store.db import Database, create_engine
from server.store.migrate import upgrade

T = TypeVar("T")


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(create_engine(settings.database_url))
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from server.app import create_app
    from server.http.observability import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    print(
        f"Showroom serving on http://{settings.host}:{settings.port} (public URL {settings.public_url})",
        flush=True,
    )
    app = create_app(settings)
    # What importing and building the app made (~160k objects) lives as long as the process:
    # frozen, full garbage collections skip it, and their pauses under load fall from ~100 ms
    # to 10-40 ms (bench/flash_sale.py: checkout p99 88 -> 43-51 ms at ~2,000 orders/s).
    # So, from then on, does what survives each full collection (server/collector.py).
    COLLECTOR.install()
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None)
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    upgrade(settings.database_url)
    print(f"Database is up to date ({_safe_url(settings.database_url)})")
    return 0


def cmd_seed_demo(settings: Settings, args: argparse.Namespace) -> int:
    seed = _with_database(settings, demo.do_seed_demo)
    url = settings.public_url
    state = "created" if seed.products_created else "already there"
    print(
        f"""
Demo brand ready (products {state}; show {seed.show.state.value}).

  Studio (host):  {url}/studio/{seed.show.id}
  Watch (viewer): {url}/watch/{seed.show.id}
  Admin:          {url}/admin

  Host token for this show (paste into the studio):
    {seed.host_token}
  Admin API key (paste into admin, or send as Authorization: Bearer):
    {seed.admin_key}

  (Each seeding revokes the previous demo tokens.)
""",
        flush=True,
    )
    return 0


def cmd_create_token(settings: Settings, args: argparse.Namespace) -> int:
    role = Role(args.role)
    if role is Role.ADMIN and args.show:
        print("showroom: --show applies to host tokens only", file=sys.stderr)
        return 2
    show_id = uuid.UUID(args.show) if args.show else None

    async def create(db: Database) -> str:
        _, token = await identity.do_create_api_key(db, role=role, show_id=show_id, name=args.name)
        return token

    print(_with_database(settings, create))
    return 0


def cmd_import_products(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.file)
    fmt = args.format or ("json" if path.suffix.lower() == ".json" else "csv")
    content = path.read_bytes()
    if args.dry_run:
        _, errors, rows = catalog.parse_import(
            content, fmt, default_currency=settings.default_currency
        )
        report = catalog.ImportReport(rows=rows, errors=errors)
    else:
        report = _with_database(
            settings,
            lambda db: catalog.do_import_products(
                db,
                content,
                fmt,
                valid_only=args.valid_only,
                default_currency=settings.default_currency,
            ),
        )
    for error in report.errors:
        where = f" {error.field}" if error.field else ""
        print(f"row {error.row} ({error.sku or '?'}){where}: {error.message}", file=sys.stderr)
    if report.written:
        print(
            f"{report.rows} rows: {report.created} created, {report.updated} updated, {len({e.row for e in report.errors})} rejected"
        )
        return 0
    if report.errors:
        print("Nothing imported. Fix the rows above, or pass --valid-only.", file=sys.stderr)
        return 1
    print(
        f"{report.rows} rows checked, no errors" + ("" if args.dry_run else "; nothing to import")
    )
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="showroom", description="Showroom live shopping server")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve HTTP on SHOWROOM_HOST:SHOWROOM_PORT").set_defaults(
        run=cmd_serve
    )
    sub.add_parser("migrate", help="apply database migrations").set_defaults(run=cmd_migrate)
    sub.add_parser(
        "seed-demo", help="create the demo brand (idempotent) and print tokens"
    ).set_defaults(run=cmd_seed_demo)
    token = sub.add_parser("create-token", help="mint an admin API key or host token and print it")
    token.add_argument("--role", choices=["admin", "host"], required=True)
    token.add_argument("--show", help="host tokens: limit to this show id", type=_show_id)
    token.add_argument("--name", default="", help="a label to recognise the key by")
    token.set_defaults(run=cmd_create_token)
    imp = sub.add_parser("import-products", help="import products from a CSV or JSON file")
    imp.add_argument("file")
    imp.add_argument("--format", choices=["csv", "json"], help="default: from the file extension")
    imp.add_argument(
        "--valid-only", action="store_true", help="import valid rows even if others fail"
    )
    imp.add_argument("--dry-run", action="store_true", help="check the file, write nothing")
    imp.set_defaults(run=cmd_import_products)
    return top


def _show_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a show id") from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"showroom: invalid setting {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.run(settings, args))
    except DomainError as exc:
        print(f"showroom: {exc.field + ': ' if exc.field else ''}{exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"showroom: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
