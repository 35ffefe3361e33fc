"""Tables. Relationships are lazy="raise_on_sql" so a hidden lazy load fails loudly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price_minor >= 0", name="price_non_negative"),
        CheckConstraint(
            "compare_at_minor IS NULL OR compare_at_minor > price_minor", name="compare_at_above"
        ),
        CheckConstraint("stock >= 0", name="stock_non_negative"),
        # SKUs are unique among live products; a deleted product's SKU may be used again.
        Index(
            "uq_products_sku_live",
            "sku",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    sku: Mapped[str] = mapped_column(String(64))
    title: Mapped[dict[str, str]] = mapped_column(JSON)
    description: Mapped[dict[str, str]] = mapped_column(JSON)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    compare_at_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    stock: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    # Lower-cased SKU and titles in every locale, so one LIKE searches all of them.
    search_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Show(Base):
    __tablename__ = "shows"
    __table_args__ = (
        CheckConstraint("state IN ('scheduled', 'live', 'ended', 'cancelled')", name="state_known"),
        Index("ix_shows_state_start", "state", "scheduled_start"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    scheduled_start: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16))
    host_name: Mapped[str] = mapped_column(String(100), default="")
    locale: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last live-room event number. Bumped in the same transaction as each stored room
    # event, so the row lock orders events per show: seq order is commit order.
    event_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Room settings the host controls; `room_seq` is the event number of their last change.
    pinned_message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    slow_mode_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    room_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Most members watching at once, across every server process.
    peak_viewers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The event number of the last pin or unpin of a product.
    pins_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # How viewers buy: "native" orders here, or "handoff" to the brand's own cart at
    # `handoff_url` (a template, see server/domain/handoff.py).
    checkout_mode: Mapped[str] = mapped_column(String(8), default="native", server_default="native")
    handoff_url: Mapped[str | None] = mapped_column(String(2048))
    # What a viewer types in chat to claim the pinned product ("+1"); None turns claims off.
    claim_keyword: Mapped[str | None] = mapped_column(String(16), default="+1", server_default="+1")


class Member(Base):
    """A customer as the brand knows them: one member id across app, web and store."""

    __tablename__ = "members"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """Admin API keys and host tokens. Only a SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('admin', 'host')", name="role_known"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    role: Mapped[str] = mapped_column(String(8))
    # A host token scoped to one show; NULL means every show.
    show_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (
        Index("uq_chat_messages_show_seq", "show_id", "seq", unique=True),
        Index("ix_chat_messages_show_author", "show_id", "author_role", "author_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    show_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("shows.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    author_role: Mapped[str] = mapped_column(String(8))
    # The member id (viewers), guest id (guests) or key id (hosts, admins).
    author_id: Mapped[str] = mapped_column(String(128))
    author_name: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A moderator's delete: the message leaves every screen and the history.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_seq: Mapped[int | None] = mapped_column(BigInteger)


class ShowParticipant(Base):
    """Everyone who joined a show's room, by the opaque author id others see, so a host can
    act on an author without ever seeing who they are in the brand's systems."""

    __tablename__ = "show_participants"

    show_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="CASCADE"), primary_key=True
    )
    author_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(100))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sanction(Base):
    """A mute (may watch, may not talk) or ban (may not join) for one show or every show."""

    __tablename__ = "sanctions"
    __table_args__ = (
        CheckConstraint("kind IN ('mute', 'ban')", name="kind_known"),
        Index("ix_sanctions_who", "role", "subject"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    show_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="CASCADE")
    )  # NULL: every show
    role: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8))
    created_by: Mapped[str] = mapped_column(String(140))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ShowModerator(Base):
    __tablename__ = "show_moderators"

    show_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), primary_key=True)


class ShowReaction(Base):
    """Reaction totals per show and kind, added to in batches (never one write per tap)."""

    __tablename__ = "show_reactions"

    show_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class Question(Base):
    __tablename__ = "questions"
    __table_args__ = (
        CheckConstraint(
            "state IN ('open', 'answering', 'answered', 'dismissed')", name="state_known"
        ),
        CheckConstraint("votes >= 0", name="votes_non_negative"),
        Index("ix_questions_show_seq", "show_id", "seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    show_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("shows.id", ondelete="CASCADE"))
    # The show's event number of this question's latest change (asked, voted, marked).
    seq: Mapped[int] = mapped_column(BigInteger)
    author_role: Mapped[str] = mapped_column(String(8))
    author_id: Mapped[str] = mapped_column(String(128))
    author_name: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")
    votes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QuestionVote(Base):
    __tablename__ = "question_votes"

    question_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True
    )
    voter: Mapped[str] = mapped_column(String(140), primary_key=True)  # role:subject
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Recording(Base):
    """A show's live recording: the host's encoded stream as it was relayed, for the replay."""

    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint("duration_ms >= 0", name="duration_non_negative"),
        CheckConstraint("bytes >= 0", name="bytes_non_negative"),
        Index("ix_recordings_show", "show_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    show_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("shows.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(500))  # relative to the data directory
    container: Mapped[str] = mapped_column(String(16))
    video_codec: Mapped[str | None] = mapped_column(String(16))
    audio_codec: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClipJob(Base):
    """A product's clip, cut from a show's replay around the product's first moment: queued
    when the show ends, then run by the app's clip worker (one at a time)."""

    __tablename__ = "clip_jobs"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state_known"),
        CheckConstraint("progress_pct >= 0 AND progress_pct <= 100", name="progress_in_range"),
        CheckConstraint("start_s >= 0 AND duration_s > 0", name="span_valid"),
        Index("uq_clip_jobs_show_sku", "show_id", "sku", unique=True),
        Index("ix_clip_jobs_due", "state", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    show_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("shows.id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("products.id", ondelete="CASCADE")
    )
    state: Mapped[str] = mapped_column(String(8), default="queued")
    progress_pct: Mapped[int] = mapped_column(Integer, default=0)
    start_s: Mapped[float] = mapped_column(Float)  # on the replay's timeline (a keyframe)
    duration_s: Mapped[float] = mapped_column(Float)
    path: Mapped[str | None] = mapped_column(String(500))  # relative to the data directory
    error: Mapped[str | None] = mapped_column(Text)  # ffmpeg's reason, when failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Video(Base):
    """A video made by staff: an uploaded file, or a clip cut from a show's replay. Queued,
    then made by the app's video worker (one at a time per process); served once done."""

    __tablename__ = "videos"
    __table_args__ = (
        CheckConstraint("kind IN ('upload', 'clip')", name="kind_known"),
        CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state_known"),
        CheckConstraint("progress_pct >= 0 AND progress_pct <= 100", name="progress_in_range"),
        CheckConstraint(
            "kind = 'upload' OR (show_id IS NOT NULL AND start_s >= 0 AND duration_s > 0)",
            name="clip_has_range",
        ),
        Index("ix_videos_due", "state", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    show_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="CASCADE")
    )
    state: Mapped[str] = mapped_column(String(8), default="queued")
    progress_pct: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)  # the reason, when failed
    start_s: Mapped[float | None] = mapped_column(Float)  # a clip's start in the replay
    duration_s: Mapped[float | None] = mapped_column(Float)  # a clip's range; then the made one
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    source_path: Mapped[str | None] = mapped_column(String(500))  # an upload, until made
    path: Mapped[str | None] = mapped_column(String(500))  # relative to the data directory
    poster_path: Mapped[str | None] = mapped_column(String(500))
    transcoded: Mapped[bool | None] = mapped_column(Boolean)  # re-encoded, or only remuxed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VideoTag(Base):
    """A product shown in a video, at seconds from the video's start."""

    __tablename__ = "video_tags"
    __table_args__ = (
        CheckConstraint("at_s >= 0", name="at_non_negative"),
        Index("ix_video_tags_sku", "sku"),
    )

    video_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("products.id", ondelete="CASCADE")
    )
    sku: Mapped[str] = mapped_column(String(64))
    at_s: Mapped[float] = mapped_column(Float)


class VideoPlay(Base):
    """A viewer who played a made video (an upload or a staff clip) on a brand's page: the
    embed's id for that browser. Distinct viewers are the video's engagement."""

    __tablename__ = "video_plays"

    video_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True
    )
    viewer: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ShowPin(Base):
    """A product pinned during a show, with its flash price; kept after unpinning, so the
    replay knows when each product was on screen."""

    __tablename__ = "show_pins"
    __table_args__ = (
        CheckConstraint(
            "flash_price_minor IS NULL OR flash_price_minor >= 0", name="flash_non_negative"
        ),
        # A product is pinned at most once at a time in a show.
        Index(
            "uq_show_pins_active",
            "show_id",
            "product_id",
            unique=True,
            sqlite_where=text("unpinned_at IS NULL"),
            postgresql_where=text("unpinned_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    show_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("shows.id", ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("products.id"))
    flash_price_minor: Mapped[int | None] = mapped_column(BigInteger)
    flash_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    unpinned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Order(Base):
    """A checkout: its stock is held while `reserved` (until `reserved_until`), becomes a
    sale when `placed`, and returns to stock if it expires or is cancelled."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('reserved', 'placed', 'paid', 'cancelled', 'expired')",
            name="status_known",
        ),
        CheckConstraint("total_minor >= 0", name="total_non_negative"),
        # One order per buyer and Idempotency-Key: a checkout sent twice is answered once.
        Index(
            "uq_orders_idempotency",
            "buyer_role",
            "buyer_subject",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_key IS NOT NULL"),
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_orders_status_reserved", "status", "reserved_until"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    buyer_role: Mapped[str] = mapped_column(String(8))
    buyer_subject: Mapped[str] = mapped_column(String(128))
    show_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    reserved_until: Mapped[datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Given when the buyer confirms (reserved -> placed).
    contact: Mapped[dict[str, str] | None] = mapped_column(JSON)
    delivery: Mapped[dict[str, str] | None] = mapped_column(JSON)
    payment_method: Mapped[str | None] = mapped_column(String(32))
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_minor >= 0", name="price_non_negative"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(64))
    title: Mapped[dict[str, str]] = mapped_column(JSON)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    flash: Mapped[bool] = mapped_column(default=False)


class CartItem(Base):
    """A product in a buyer's cart: one row per buyer and product, kept across their
    sockets and devices (a member is one subject everywhere). Holds no stock."""

    __tablename__ = "cart_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        UniqueConstraint(
            "owner_role", "owner_subject", "product_id", name="uq_cart_items_owner_product"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_role: Mapped[str] = mapped_column(String(8))
    owner_subject: Mapped[str] = mapped_column(String(128))
    product_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("products.id", ondelete="CASCADE")
    )
    quantity: Mapped[int] = mapped_column(Integer)
    # The show it was added from: its flash price applies, and the sale is credited to it.
    show_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="SET NULL")
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Claim(Base):
    """A viewer's "+1" in chat that put the pinned product in their cart."""

    __tablename__ = "claims"
    __table_args__ = (Index("ix_claims_show_created", "show_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    show_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("shows.id", ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(64))
    buyer_role: Mapped[str] = mapped_column(String(8))
    buyer_subject: Mapped[str] = mapped_column(String(128))
    author_name: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(500))
    cart_quantity: Mapped[int] = mapped_column(Integer)  # units in the cart after this claim
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FunnelCount(Base):
    """How often each step of the sales funnel happened for a product in a show (card
    shown, opened, added to cart, checkout started); written in batches."""

    __tablename__ = "funnel_counts"

    show_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="CASCADE"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[str] = mapped_column(String(24), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class WebhookEndpoint(Base):
    """Where the brand's systems receive signed events. The secret is kept as given
    (`whsec_` + base64), since signing needs it."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(64))
    # The event types it receives; NULL: every type.
    event_types: Mapped[list[str] | None] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookMessage(Base):
    """One event in the outbox, written in the transaction that caused it. `id` is the
    `webhook-id` header, the same on every attempt; `body` is the exact JSON signed."""

    __tablename__ = "webhook_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One message to one endpoint. While pending, `next_attempt_at` is when it is due; a
    dispatcher that takes it pushes it forward (a lease) and counts the attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status_known"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("uq_webhook_deliveries_message_endpoint", "message_id", "endpoint_id", unique=True),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    message_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("webhook_messages.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookAttempt(Base):
    """The log of one delivery: every request made, and what came back."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    response_body: Mapped[str | None] = mapped_column(String(1000))


class LoyaltyRules(Base):
    """The brand's earning rules; every change is a new version, and each ledger entry
    names the version that earned it."""

    __tablename__ = "loyalty_rules"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ShowLoyaltyRules(Base):
    """Rules one show overrides, field by field."""

    __tablename__ = "show_loyalty_rules"

    show_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="CASCADE"), primary_key=True
    )
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberPoints(Base):
    """A member's balance (always the sum of their ledger entries), tier and streak."""

    __tablename__ = "member_points"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_non_negative"),)

    member_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    tier: Mapped[str] = mapped_column(String(40))
    rolling_points: Mapped[int] = mapped_column(BigInteger, default=0)
    badges: Mapped[list[str]] = mapped_column(JSON, default=list)
    streak: Mapped[int] = mapped_column(Integer, default=0)
    streak_show_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    shows_attended: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """Append-only: points earned, redeemed, adjusted, expired or reversed."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('earn', 'redeem', 'adjust', 'expire', 'reverse')", name="kind_known"
        ),
        CheckConstraint("points <> 0", name="points_non_zero"),
        CheckConstraint("balance_after >= 0", name="balance_after_non_negative"),
        UniqueConstraint("member_id", "idempotency_key", name="uq_ledger_entries_member_key"),
        Index("ix_ledger_entries_member_created", "member_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(24))
    points: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    show_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="SET NULL")
    )
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("orders.id", ondelete="SET NULL")
    )
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    rules_version: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ShowAttendance(Base):
    """What one viewer (member or guest) did in one show, as the server measured it; the
    counters the per-show caps are checked against."""

    __tablename__ = "show_attendance"

    show_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="CASCADE"), primary_key=True
    )
    viewer: Mapped[str] = mapped_column(String(140), primary_key=True)  # "role:subject"
    member_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("members.id", ondelete="CASCADE")
    )
    watched_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    # Wall-clock time up to which watching is credited: never twice for one viewer.
    watched_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    chats: Mapped[int] = mapped_column(Integer, default=0)
    questions: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    reactions: Mapped[int] = mapped_column(Integer, default=0)
    referrals: Mapped[int] = mapped_column(Integer, default=0)
    referred_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    points: Mapped[int] = mapped_column(BigInteger, default=0)  # earned in this show
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ShowMinute(Base):
    """Viewers watching in each minute of a show: the retention curve."""

    __tablename__ = "show_minutes"

    show_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("shows.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)
    viewers: Mapped[int] = mapped_column(Integer)


class WatchCheckpoint(Base):
    """The watching one live show's accrual holds back and has not written yet (it writes
    watching in blocks of minutes), saved with every periodic write, so a restarted process
    reads it back and a crash loses at most one write interval. No foreign key: it is read
    back only for a live show, and deleted otherwise."""

    __tablename__ = "watch_checkpoints"

    show_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # JSON text (services/accrual.py `_checkpoint`): {"v": 1, "at": unix seconds, "n":
    # entries, "viewers" and "members" (guests: ""): newline-joined, "spans": base64 of
    # float64 little-endian start and end per entry}; a viewer may have several entries.
    held: Mapped[str] = mapped_column(Text)
