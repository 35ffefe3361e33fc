"""Stock of pinned products reaches viewers coalesced: at most one `products.stock` event per
show every STOCK_INTERVAL, carrying the latest count of each product that changed, however
many sales or adjustments happened meanwhile."""

from __future__ import annotations

import asyncio
import logging

from server.realtime.rooms import RoomHub

STOCK_INTERVAL = 0.25
log = logging.getLogger("showroom.realtime")


class StockBoard:
    def __init__(self, hub: RoomHub) -> None:
        self.hub = hub
        self.pending: dict[str, dict[str, int]] = {}  # show id -> {sku: stock}

    def note(self, counts: dict[str, dict[str, int]]) -> None:
        """New stock counts: {show id: {sku: stock}} (from pins.access_pinned_stock)."""
        for show_id, stock in counts.items():
            self.pending.setdefault(show_id, {}).update(stock)

    def flush(self) -> None:
        batch, self.pending = self.pending, {}
        for show_id, stock in batch.items():
            self.hub.publish(show_id, {"type": "products.stock", "stock": stock})

    async def run(self) -> None:
        while True:
            await asyncio.sleep(STOCK_INTERVAL)
            try:
                self.flush()
            except Exception:
                log.exception("stock flush failed")
