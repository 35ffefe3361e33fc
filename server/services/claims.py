"""Comment-to-order: a "+1" in chat puts the pinned product in the viewer's cart and lands
in the host's claims feed. A claim holds no stock (checkout does); it is refused when the
product is already sold out, or would be by what the viewer's cart holds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from server.domain import claims as rules
from server.domain.claims import Candidate, ClaimRefused
from server.domain.shows import ShowState
from server.services import carts
from server.services.identity import Principal, Role
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

BUYER_ROLES = frozenset({Role.VIEWER, Role.GUEST})


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    id: uuid.UUID
    show_id: uuid.UUID
    sku: str
    title: dict[str, str]
    buyer_role: str
    buyer_subject: str
    author_name: str
    text: str
    cart_quantity: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ShowCommerce:
    """What the live room needs to know of a show's selling, cached per process."""

    keyword: str | None
    pinned_ever: frozenset[str]  # SKUs pinned at any time in this show (funnel signals)


async def access_show_commerce(db: Database, show_id: uuid.UUID) -> ShowCommerce:
    async with db.read() as session:
        keyword = await session.scalar(
            select(models.Show.claim_keyword).where(models.Show.id == show_id)
        )
        skus = await session.scalars(
            select(models.Product.sku)
            .join(models.ShowPin, models.ShowPin.product_id == models.Product.id)
            .where(models.ShowPin.show_id == show_id)
        )
        return ShowCommerce(keyword, frozenset(skus))


async def do_claim(
    db: Database,
    show_id: uuid.UUID,
    buyer: Principal,
    *,
    author_name: str,
    text: str,
    words: str,
    max_quantity: int,
) -> ClaimRecord:
    """Resolve the claim against what is pinned now, add one unit to the buyer's cart and
    record the claim, in one transaction; ClaimRefused says why not."""
    if buyer.role not in BUYER_ROLES:
        raise ClaimRefused("not_a_buyer", "only viewers and guests can claim products")
    now = utcnow()
    async with db.transaction() as session:
        show = await session.get(models.Show, show_id)
        if show is None or show.state != ShowState.LIVE.value:
            raise ClaimRefused("show_not_live", "claims are taken while the show is live")
        pinned = {
            product.sku: product
            for product in await session.scalars(
                select(models.Product)
                .join(models.ShowPin, models.ShowPin.product_id == models.Product.id)
                .where(
                    models.ShowPin.show_id == show_id,
                    models.ShowPin.unpinned_at.is_(None),
                    models.Product.deleted_at.is_(None),
                )
                .order_by(models.ShowPin.pinned_at)
            )
        }
        chosen = rules.resolve(words, [Candidate.of(p.sku, dict(p.title)) for p in pinned.values()])
        product = pinned[chosen.sku]
        in_cart = await session.scalar(
            select(models.CartItem.quantity).where(
                models.CartItem.owner_role == buyer.role.value,
                models.CartItem.owner_subject == buyer.subject,
                models.CartItem.product_id == product.id,
            )
        )
        held = in_cart or 0
        if product.stock <= 0:
            raise ClaimRefused("sold_out", f"{product.sku} is sold out", [chosen])
        if held + 1 > product.stock:
            raise ClaimRefused(
                "sold_out",
                f"only {product.stock} of {product.sku} left and your cart already has {held}",
                [chosen],
            )
        if held + 1 > max_quantity:
            raise ClaimRefused(
                "limit", f"your cart already has the most of {product.sku} one order can take"
            )
        quantity = await carts.put_item(
            session,
            buyer,
            product,
            quantity=1,
            add=True,
            show_id=show_id,
            max_quantity=max_quantity,
        )
        row = models.Claim(
            id=uuid.uuid4(),
            show_id=show_id,
            product_id=product.id,
            sku=product.sku,
            buyer_role=buyer.role.value,
            buyer_subject=buyer.subject,
            author_name=author_name[:100],
            text=text[:500],
            cart_quantity=quantity,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        return ClaimRecord(
            row.id,
            show_id,
            product.sku,
            dict(product.title),
            row.buyer_role,
            row.buyer_subject,
            row.author_name,
            row.text,
            quantity,
            now,
        )


async def list_claims(
    db: Database, show_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[list[ClaimRecord], int]:
    """Newest first, for the host's feed."""
    async with db.read() as session:
        total = await session.scalar(
            select(func.count()).select_from(models.Claim).where(models.Claim.show_id == show_id)
        )
        rows = await session.execute(
            select(models.Claim, models.Product.title)
            .join(models.Product, models.Product.id == models.Claim.product_id)
            .where(models.Claim.show_id == show_id)
            .order_by(models.Claim.created_at.desc(), models.Claim.id)
            .limit(limit)
            .offset(offset)
        )
        return [
            ClaimRecord(
                c.id,
                c.show_id,
                c.sku,
                dict(title),
                c.buyer_role,
                c.buyer_subject,
                c.author_name,
                c.text,
                c.cart_quantity,
                c.created_at,
            )
            for c, title in rows
        ], int(total or 0)
