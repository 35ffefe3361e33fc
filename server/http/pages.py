"""The web pages (studio, watch, admin): static files from web/, no build step."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

PAGES = {
    "/admin": "admin.html",
    "/studio/{show_id}": "studio.html",
    "/watch/{show_id}": "watch.html",
}


def add_pages(app: web.Application, web_dir: Path) -> None:
    for path, filename in PAGES.items():
        app.router.add_get(path, _page(web_dir / filename), name=f"page:{filename}")

    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/admin")

    app.router.add_get("/", home, name="page:home")
    # The product-page embed: one script tag on a brand's site (web/embed.js says how).
    app.router.add_get("/embed.js", _page(web_dir / "embed.js"), name="page:embed.js")
    app.router.add_static("/web/", web_dir, name="web")
    # The official Socket.IO client, from npm (`make install` puts it in node_modules).
    client = web_dir.parent / "node_modules/socket.io-client/dist/socket.io.esm.min.js"
    app.router.add_get("/vendor/socket.io.esm.min.js", _page(client), name="vendor:socket.io")
    # hls.js, from npm, for pages that play live HLS or a replay where Safari's player is not.
    hls = web_dir.parent / "node_modules/hls.js/dist/hls.min.js"
    app.router.add_get("/vendor/hls.min.js", _page(hls), name="vendor:hls.js")
    # uPlot, from npm, for the admin page's charts: its ES module build and its stylesheet.
    uplot = web_dir.parent / "node_modules/uplot/dist"
    app.router.add_get("/vendor/uPlot.esm.js", _page(uplot / "uPlot.esm.js"), name="vendor:uplot")
    app.router.add_get(
        "/vendor/uPlot.min.css", _page(uplot / "uPlot.min.css"), name="vendor:uplot.css"
    )


def _page(file: Path):  # type: ignore[no-untyped-def]
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(file, headers={"Cache-Control": "no-cache"})

    return serve
