"""Shoppable replays: each pin placed on the replay's own timeline (which skips the times the
host was away), in the replay's answer and in the product's list of videos."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from media.hls import Span, media_time, read_timeline
from server.config import Settings
from server.store import models
from server.store.db import Database
from tests.conftest import Api, create_product, create_show, host_token, place_pins

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def playlist(runs: list[tuple[datetime, int]], *, ended: bool = True) -> str:
    """A VOD playlist as the HLS writer leaves it: runs of 2 s segments, each segment with
    its program date-time, a discontinuity between runs (the host away)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    lines.append("#EXT-X-PLAYLIST-TYPE:VOD" if ended else "#EXT-X-PLAYLIST-TYPE:EVENT")
    n = 0
    for k, (start, count) in enumerate(runs):
        if k:
            lines.append("#EXT-X-DISCONTINUITY")
        for i in range(count):
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso(start + timedelta(seconds=2 * i))}")
            lines += ["#EXTINF:2.000,", f"seg-{n:06d}.ts"]
            n += 1
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


# Two runs: 12:00:00-12:00:10 (5 segments), the host away, then 12:01:00-12:01:06 (3).
RUNS = [(T0, 5), (T0 + timedelta(minutes=1), 3)]


def test_wall_clock_moments_map_onto_the_replays_timeline() -> None:
    spans = read_timeline(playlist(RUNS))
    assert spans[0] == Span(T0.timestamp(), 0.0, 2.0)
    assert [s.media for s in spans] == [0, 2, 4, 6, 8, 10, 12, 14]
    at = lambda seconds: media_time(spans, (T0 + timedelta(seconds=seconds)).timestamp())  # noqa: E731
    assert at(-30) == 0  # before the video: its start
    assert at(3.5) == 3.5
    assert at(30) == 10  # the host away: where the video carries on
    assert at(61) == 11
    assert at(65.5) == 15.5
    assert at(66.5) is None  # after the video
    assert media_time([], T0.timestamp()) is None
    # A segment without its own date-time follows on from the one before.
    text = playlist([(T0, 2)]).replace(
        f"#EXT-X-PROGRAM-DATE-TIME:{_iso(T0 + timedelta(seconds=2))}\n", ""
    )
    assert [s.wall - T0.timestamp() for s in read_timeline(text)] == [0, 2]
    # Tags in either order before the URI (ffmpeg writes the date-time after #EXTINF).
    swapped = "#EXTM3U\n#EXTINF:2.0,\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:00.000+0000\n"
    swapped += "seg-000000.ts\n#EXTINF:1.5,\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:10Z\n"
    swapped += "seg-000001.ts\n#EXT-X-ENDLIST\n"
    assert read_timeline(swapped) == [
        Span(T0.timestamp(), 0.0, 2.0),
        Span(T0.timestamp() + 10, 2.0, 1.5),
    ]


async def _pin(api: Api, admin: str, show_id: str, sku: str) -> None:
    pinned = await api.call(
        "POST", f"/api/v1/shows/{show_id}/pins", auth=admin, json_body={"sku": sku}
    )
    assert pinned.status == 200, pinned.text


async def _ended_show_with_replay(
    api: Api,
    db: Database,
    admin: str,
    settings: Settings,
    pins: dict[str, tuple[float, float | None]],
    *,
    title: str = "Replay",
) -> str:
    """A show that pinned `pins` ({sku: (seconds after T0 pinned, unpinned or None)}), ended,
    with the replay playlist RUNS describes."""
    show = await create_show(api, admin, title=title)
    token = await host_token(db, show["id"])
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=token)).status == 200
    for sku in pins:  # at most 3 at once: each is unpinned again (its times are set below)
        await _pin(api, admin, show["id"], sku)
        unpinned = await api.call("DELETE", f"/api/v1/shows/{show['id']}/pins/{sku}", auth=admin)
        assert unpinned.status == 200, unpinned.text
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/end", auth=token)).status == 200
    await place_pins(
        db,
        show["id"],
        {
            sku: (
                T0 + timedelta(seconds=pinned),
                None if unpinned is None else T0 + timedelta(seconds=unpinned),
            )
            for sku, (pinned, unpinned) in pins.items()
        },
    )
    folder = Path(settings.data_dir) / "hls" / show["id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.m3u8").write_text(playlist(RUNS))
    return str(show["id"])


async def test_the_replay_places_every_pin_on_its_timeline(
    api: Api, db: Database, admin: str, settings: Settings
) -> None:
    for sku in ("EARLY", "INSIDE", "AWAY", "GONE", "LATE", "TOOLATE", "HIDDEN"):
        await create_product(api, admin, sku, stock=3)
    show_id = await _ended_show_with_replay(
        api,
        db,
        admin,
        settings,
        {
            "EARLY": (-20, 3),  # before the video: from its start, until 3 s in
            "INSIDE": (4.5, None),  # still pinned when the show ended: to the end
            "AWAY": (30, 62),  # pinned while the host was away: from when they came back
            "GONE": (20, 40),  # on screen only while the host was away: left out
            "LATE": (64, 400),  # unpinned after the video: to the end
            "TOOLATE": (70, None),  # pinned after the video: left out
            "HIDDEN": (1, 2),  # a product deleted since: left out
        },
    )
    archived = await api.call("DELETE", "/api/v1/products/HIDDEN", auth=admin)
    assert archived.status == 204, archived.text
    replay = await api.call("GET", f"/api/v1/shows/{show_id}/replay")  # public
    assert replay.status == 200, replay.text
    assert replay.body["ready"] and replay.body["duration_s"] == 16.0
    moments = {m["sku"]: (m["at_s"], m["until_s"]) for m in replay.body["moments"]}
    assert moments == {
        "EARLY": (0, 3),
        "INSIDE": (4.5, None),
        "AWAY": (10, 12),
        "LATE": (14, None),
    }
    assert [m["sku"] for m in replay.body["moments"]] == ["EARLY", "INSIDE", "AWAY", "LATE"]
    early = replay.body["moments"][0]
    assert early["stock"] == 3 and early["price"]["currency"] == "HKD"


async def test_a_products_videos_are_its_replays_most_watched_first(
    api: Api, db: Database, admin: str, settings: Settings
) -> None:
    await create_product(api, admin, "SERUM", stock=5)
    await create_product(api, admin, "OTHER", stock=5)
    quiet = await _ended_show_with_replay(
        api, db, admin, settings, {"SERUM": (3, 5)}, title="Quiet show"
    )
    busy = await _ended_show_with_replay(
        api, db, admin, settings, {"SERUM": (62, None), "OTHER": (1, None)}, title="Busy show"
    )
    await _ended_show_with_replay(api, db, admin, settings, {"OTHER": (1, None)}, title="Other")
    # A show still live with the product pinned has no replay yet; nor has one never filmed.
    live = await create_show(api, admin, title="Live now")
    token = await host_token(db, live["id"])
    assert (await api.call("POST", f"/api/v1/shows/{live['id']}/start", auth=token)).status == 200
    await _pin(api, admin, live["id"], "SERUM")
    unfilmed = await create_show(api, admin, title="Never filmed")
    token = await host_token(db, unfilmed["id"])
    assert (
        await api.call("POST", f"/api/v1/shows/{unfilmed['id']}/start", auth=token)
    ).status == 200
    await _pin(api, admin, unfilmed["id"], "SERUM")
    assert (await api.call("POST", f"/api/v1/shows/{unfilmed['id']}/end", auth=token)).status == 200
    # The busy show had more viewers.
    async with db.transaction() as session:
        for n in range(3):
            session.add(
                models.ShowAttendance(
                    show_id=uuid.UUID(busy), viewer=f"guest:g{n}", first_seen=T0, last_seen=T0
                )
            )

    videos = await api.call("GET", "/api/v1/products/SERUM/videos")  # public
    assert videos.status == 200, videos.text
    assert videos.headers["Access-Control-Allow-Origin"] == "*"  # a brand's page reads it
    items = videos.body["items"]
    assert [(v["show_id"], v["title"], v["viewers"]) for v in items] == [
        (busy, "Busy show", 3),
        (quiet, "Quiet show", 0),
    ]
    assert [(m["sku"], m["at_s"], m["until_s"]) for m in items[0]["moments"]] == [
        ("SERUM", 12, None)
    ]
    assert items[0]["watch_url"] == f"/watch/{busy}?t=12"
    assert items[1]["watch_url"] == f"/watch/{quiet}?t=3"
    assert items[0]["playlist_url"] == f"/hls/{busy}/index.m3u8"
    limited = await api.call("GET", "/api/v1/products/SERUM/videos?limit=1")
    assert [v["show_id"] for v in limited.body["items"]] == [busy]

    missing = await api.call("GET", "/api/v1/products/NOPE/videos")
    assert missing.status == 404 and "NOPE" in missing.body["detail"]
    refused = await api.call("GET", "/api/v1/products/SERUM/videos?limit=0")
    assert refused.status == 400 and "limit" in refused.text
