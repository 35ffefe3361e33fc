"""The baseline for bench/chat_fanout.py: a plain python-socketio server on aiohttp that
emits each chat message to the room as it arrives (one emit per message, which
python-socketio sends to every viewer). It speaks the same /live events the benchmark's
clients use (join, chat:send), with no database and no checks, so it is as cheap as a
plain server gets.

    python bench/baseline_socketio.py PORT
"""

from __future__ import annotations

import sys
import time
from typing import Any

import socketio
from aiohttp import web

NAMESPACE = "/live"


def create_app() -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
    app = web.Application()
    sio.attach(app, socketio_path="socket.io")
    seq = 0

    @sio.on("connect", namespace=NAMESPACE)  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        return None

    @sio.on("join", namespace=NAMESPACE)  # type: ignore[untyped-decorator]
    async def join(sid: str, payload: dict[str, Any]) -> dict[str, Any]:
        await sio.enter_room(sid, payload["show_id"], namespace=NAMESPACE)
        return {"ok": True}

    @sio.on("chat:send", namespace=NAMESPACE)  # type: ignore[untyped-decorator]
    async def send(sid: str, payload: dict[str, Any]) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        message = {
            "type": "chat.message",
            "seq": seq,
            "text": payload["text"],
            "author": {"id": sid, "name": "viewer"},
            "at": time.time(),
        }
        await sio.emit("chat", message, room=payload["show_id"], namespace=NAMESPACE)
        return {"ok": True, "message": message}

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/readyz", ready)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None)
