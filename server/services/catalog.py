"""Catalog use-cases: products, stock adjustments and bulk import."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.catalog import (
    CSV_COLUMNS,
    ProductDraft,
    ProductStatus,
    draft_from_json,
    try_draft_from_csv,
    try_draft_from_json,
)
from server.domain.errors import Conflict, DomainError, InvalidValue, NotFound
from server.domain.money import Money
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

MAX_IMPORT_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class ProductRecord:
    id: uuid.UUID
    draft: ProductDraft
    created_at: datetime
    updated_at: datetime

    @property
    def sku(self) -> str:
        return self.draft.sku

    @classmethod
    def of(cls, row: models.Product) -> ProductRecord:
        return cls(
            id=row.id, draft=_draft_of(row), created_at=row.created_at, updated_at=row.updated_at
        )


def _draft_of(row: models.Product) -> ProductDraft:
    return ProductDraft(
        sku=row.sku,
        title=dict(row.title),
        description=dict(row.description),
        price=Money(row.price_minor, row.currency),
        compare_at_price=(
            None if row.compare_at_minor is None else Money(row.compare_at_minor, row.currency)
        ),
        image_url=row.image_url,
        stock=row.stock,
        status=ProductStatus(row.status),
    )


def _search_text(draft: ProductDraft) -> str:
    return " ".join([draft.sku, *draft.title.values()]).lower()


def _apply(row: models.Product, draft: ProductDraft, *, with_stock: bool) -> None:
    row.sku = draft.sku
    row.title = draft.title
    row.description = draft.description
    row.price_minor = draft.price.amount_minor
    row.currency = draft.price.currency
    row.compare_at_minor = draft.compare_at_price.amount_minor if draft.compare_at_price else None
    row.image_url = draft.image_url
    row.status = draft.status.value
    row.search_text = _search_text(draft)
    if with_stock:
        row.stock = draft.stock


def _live(sku: str) -> Any:
    return (models.Product.sku == sku) & models.Product.deleted_at.is_(None)


async def _get_live(session: AsyncSession, sku: str) -> models.Product:
    row = await session.scalar(select(models.Product).where(_live(sku)))
    if row is None:
        raise NotFound(f"no product with SKU {sku!r}")
    return row


async def do_create_product(db: Database, body: dict[str, Any]) -> ProductRecord:
    draft = draft_from_json(body)
    try:
        async with db.transaction() as session:
            if await session.scalar(select(models.Product.id).where(_live(draft.sku))):
                raise Conflict(f"a product with SKU {draft.sku!r} already exists", field="sku")
            row = models.Product()
            _apply(row, draft, with_stock=True)
            session.add(row)
            await session.flush()
            return ProductRecord.of(row)
    except IntegrityError:
        # Two creates of one SKU raced past the check; the unique index decided.
        raise Conflict(f"a product with SKU {draft.sku!r} already exists", field="sku") from None


async def access_product(db: Database, sku: str, *, include_hidden: bool) -> ProductRecord:
    """A live product; callers who are not staff see active products only."""
    async with db.read() as session:
        row = await _get_live(session, sku)
        if not include_hidden and row.status != ProductStatus.ACTIVE.value:
            raise NotFound(f"no product with SKU {sku!r}")
        return ProductRecord.of(row)


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_products(
    db: Database,
    *,
    q: str | None,
    statuses: Sequence[ProductStatus] | None,
    limit: int,
    offset: int,
) -> tuple[list[ProductRecord], int]:
    """Live products by SKU, optionally searched by SKU or title in any locale."""
    query = select(models.Product).where(models.Product.deleted_at.is_(None))
    if statuses:
        query = query.where(models.Product.status.in_([s.value for s in statuses]))
    if q:
        pattern = _like_pattern(q.strip())
        query = query.where(
            or_(
                models.Product.search_text.like(pattern, escape="\\"),
                func.lower(models.Product.sku).like(pattern, escape="\\"),
            )
        )
    async with db.read() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(query.order_by(models.Product.sku).limit(limit).offset(offset))
        return [ProductRecord.of(r) for r in rows], int(total or 0)


async def do_update_product(db: Database, sku: str, changes: dict[str, Any]) -> ProductRecord:
    async with db.transaction() as session:
        row = await _get_live(session, sku)
        draft = _draft_of(row).with_changes(changes)
        _apply(row, draft, with_stock=False)
        row.updated_at = utcnow()
        await session.flush()
        return ProductRecord.of(row)


async def do_delete_product(db: Database, sku: str) -> None:
    """Soft delete: orders and replays that name the product keep their history."""
    async with db.transaction() as session:
        row = await _get_live(session, sku)
        row.deleted_at = row.updated_at = utcnow()


async def do_adjust_stock(
    db: Database, sku: str, *, delta: int | None = None, set_to: int | None = None
) -> ProductRecord:
    """Change stock in one conditional UPDATE, so concurrent adjustments never drive it
    below zero and never lose each other's changes."""
    if (delta is None) == (set_to is None):
        raise InvalidValue("give exactly one of delta or set", field="delta")
    async with db.transaction() as session:
        current = await _get_live(session, sku)
        stmt = update(models.Product).where(models.Product.id == current.id)
        if delta is not None:
            stmt = stmt.where(models.Product.stock + delta >= 0).values(
                stock=models.Product.stock + delta, updated_at=utcnow()
            )
        else:
            stmt = stmt.values(stock=set_to, updated_at=utcnow())
        result = await session.execute(stmt.execution_options(synchronize_session=False))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(
                f"stock is {current.stock}; cannot remove {-(delta or 0)}", field="delta"
            )
        await session.refresh(current)
        return ProductRecord.of(current)


# --- import -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1-based data row (CSV: the header is row 0)
    sku: str | None
    field: str | None
    message: str


@dataclass(slots=True)
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)
    written: bool = False


def parse_import(
    content: bytes, fmt: str, *, default_currency: str
) -> tuple[list[tuple[int, ProductDraft]], list[RowError], int]:
    """Parse a whole import file into drafts and per-row errors, touching no database."""
    try:
        text = content.decode("utf-8-sig")  # Excel writes a BOM in front of UTF-8 CSV
    except UnicodeDecodeError as exc:
        raise InvalidValue(f"file is not UTF-8 (byte {exc.start})", field="file") from None
    results: list[tuple[int, tuple[ProductDraft | None, list[DomainError]], str | None]] = []
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        unknown = [c for c in header if c not in CSV_COLUMNS]
        missing = [c for c in ("sku", "price") if c not in header]
        if not header or unknown or missing:
            problem = (
                (f"unknown column {unknown[0]!r}" if unknown else f"missing column {missing[0]!r}")
                if header
                else "file is empty"
            )
            raise InvalidValue(f"{problem}; columns are {', '.join(CSV_COLUMNS)}", field="file")
        for number, row in enumerate(reader, start=1):
            if None in row:
                results.append(
                    (number, (None, [InvalidValue("more cells than columns")]), row.get("sku"))
                )
                continue
            results.append((number, try_draft_from_csv(row, default_currency), row.get("sku")))
            if number > MAX_IMPORT_ROWS:
                break
    elif fmt == "json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidValue(
                f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", field="file"
            ) from None
        if isinstance(items, dict) and set(items) == {"products"}:
            items = items["products"]
        if not isinstance(items, list):
            raise InvalidValue("must be a JSON array of products", field="file")
        for number, item in enumerate(items[: MAX_IMPORT_ROWS + 1], start=1):
            sku = item.get("sku") if isinstance(item, dict) else None
            results.append(
                (number, try_draft_from_json(item), sku if isinstance(sku, str) else None)
            )
    else:
        raise InvalidValue("format must be csv or json", field="format")
    if len(results) > MAX_IMPORT_ROWS:
        raise InvalidValue(f"more than {MAX_IMPORT_ROWS} rows; split the file", field="file")

    drafts: list[tuple[int, ProductDraft]] = []
    errors: list[RowError] = []
    first_row_of: dict[str, int] = {}
    for number, (draft, problems), sku in results:
        for broken in problems:
            errors.append(RowError(number, sku, broken.field, broken.message))
        if draft is None:
            continue
        if draft.sku in first_row_of:
            errors.append(
                RowError(number, draft.sku, "sku", f"duplicate of row {first_row_of[draft.sku]}")
            )
            continue
        first_row_of[draft.sku] = number
        drafts.append((number, draft))
    return drafts, errors, len(results)


async def do_import_products(
    db: Database, content: bytes, fmt: str, *, valid_only: bool, default_currency: str
) -> ImportReport:
    """Create or update products by SKU. A file with any error writes nothing unless
    `valid_only`, which imports the rows without errors and reports the rest."""
    drafts, errors, rows = parse_import(content, fmt, default_currency=default_currency)
    report = ImportReport(rows=rows, errors=errors)
    bad_rows = {e.row for e in errors}
    drafts = [(n, d) for n, d in drafts if n not in bad_rows]
    if errors and not valid_only:
        return report
    if not drafts:
        return report
    try:
        await _write_import(db, drafts, report)
    except IntegrityError:
        # Another import or create added one of these SKUs after we looked; nothing was written.
        raise Conflict("another change to these SKUs happened at the same time; retry") from None
    report.written = True
    return report


async def _write_import(
    db: Database, drafts: list[tuple[int, ProductDraft]], report: ImportReport
) -> None:
    async with db.transaction() as session:
        existing = {
            row.sku: row
            for row in await session.scalars(
                select(models.Product).where(
                    models.Product.sku.in_([d.sku for _, d in drafts]),
                    models.Product.deleted_at.is_(None),
                )
            )
        }
        now = utcnow()
        for _, draft in drafts:
            row = existing.get(draft.sku)
            if row is None:
                row = models.Product()
                session.add(row)
                report.created += 1
            else:
                row.updated_at = now
                report.updated += 1
            # An import states the stock the brand counted, so it replaces stock too.
            _apply(row, draft, with_stock=True)
