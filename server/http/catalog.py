"""Catalog handlers: products, stock and import."""

from __future__ import annotations

from aiohttp import web

from server.domain.catalog import ProductStatus
from server.http import views
from server.http.contract import BODY, PATH, PRINCIPAL, QUERY, media_type, read_limited
from server.http.problems import FieldError, Problem
from server.keys import DATABASE, SETTINGS, STOCK
from server.services import catalog, pins
from server.services.identity import Role


def _is_staff(request: web.Request) -> bool:
    return request[PRINCIPAL].role in (Role.ADMIN, Role.HOST)


async def create_product(request: web.Request) -> web.Response:
    record = await catalog.do_create_product(request.app[DATABASE], request[BODY])
    return views.reply(views.product(record), 201, {"Location": f"/api/v1/products/{record.sku}"})


async def list_products(request: web.Request) -> web.Response:
    query = request[QUERY]
    statuses = [ProductStatus(s) for s in query.get("status", [])]
    if not _is_staff(request):
        # Viewers see what is on sale, whatever they ask for.
        statuses = [ProductStatus.ACTIVE]
    records, total = await catalog.list_products(
        request.app[DATABASE],
        q=query.get("q"),
        statuses=statuses,
        limit=query["limit"],
        offset=query["offset"],
    )
    return views.reply(
        views.page([views.product(r) for r in records], total, query["limit"], query["offset"])
    )


async def get_product(request: web.Request) -> web.Response:
    record = await catalog.access_product(
        request.app[DATABASE], request[PATH]["sku"], include_hidden=_is_staff(request)
    )
    return views.reply(views.product(record))


async def update_product(request: web.Request) -> web.Response:
    record = await catalog.do_update_product(
        request.app[DATABASE], request[PATH]["sku"], request[BODY]
    )
    return views.reply(views.product(record))


async def delete_product(request: web.Request) -> web.Response:
    await catalog.do_delete_product(request.app[DATABASE], request[PATH]["sku"])
    return web.Response(status=204)


async def adjust_stock(request: web.Request) -> web.Response:
    body = request[BODY]
    record = await catalog.do_adjust_stock(
        request.app[DATABASE], request[PATH]["sku"], delta=body.get("delta"), set_to=body.get("set")
    )
    # Viewers of shows where it is pinned see the new count (coalesced, not per change).
    request.app[STOCK].note(await pins.access_pinned_stock(request.app[DATABASE], [record.sku]))
    return views.reply(views.product(record))


_IMPORT_TYPES = {"text/csv": "csv", "application/json": "json"}


async def import_products(request: web.Request) -> web.Response:
    settings, query = request.app[SETTINGS], request[QUERY]
    fmt = _IMPORT_TYPES.get(media_type(request))
    if fmt is None:
        raise Problem(
            415,
            f"send the file as text/csv or application/json (got {request.content_type or 'nothing'})",
            headers={"Accept-Post": "text/csv, application/json"},
        )
    content = await read_limited(request, settings.max_import_bytes)
    if query["dry_run"]:
        _, errors, rows = catalog.parse_import(
            content, fmt, default_currency=settings.default_currency
        )
        report = catalog.ImportReport(rows=rows, errors=errors)
    else:
        report = await catalog.do_import_products(
            request.app[DATABASE],
            content,
            fmt,
            valid_only=query["valid_only"],
            default_currency=settings.default_currency,
        )
    if report.errors and not report.written:
        first = report.errors[0]
        raise Problem(
            422,
            f"{len({e.row for e in report.errors})} of {report.rows} rows have errors "
            f"(first: row {first.row}, {first.field or 'row'}: {first.message}); nothing was "
            "imported. Fix them, or import the valid rows with ?valid_only=true",
            kind="import-rejected",
            errors=[
                FieldError(e.field, e.message, {"row": e.row, "sku": e.sku}) for e in report.errors
            ],
        )
    return views.reply(views.import_report(report))
