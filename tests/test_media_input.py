"""WHIP and WHEP refuse bad offers and callers with the reason, write nothing and leave no
peer connection behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from server.keys import MEDIA
from server.store.db import Database
from tests.conftest import Api, create_show, host_token, snapshot, viewer_token

SDP = {"Content-Type": "application/sdp"}


async def offer_sdp(*, send: bool, kinds: tuple[str, ...] = ("video", "audio")) -> str:
    pc = RTCPeerConnection()
    for kind in kinds:
        if kind == "data":
            pc.createDataChannel("chat")
        elif send:
            track = VideoStreamTrack() if kind == "video" else AudioStreamTrack()
            pc.addTransceiver(track, direction="sendonly")
        else:
            pc.addTransceiver(kind, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return str(sdp)


def only_codecs(sdp: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        sdp = sdp.replace(f" {old}/", f" {new}/")
    return sdp


@pytest.fixture
async def live(api: Api, db: Database, admin: str) -> AsyncIterator[dict[str, Any]]:
    show = await create_show(api, admin)
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=admin)).status == 200
    yield {"id": show["id"], "host": await host_token(db, show["id"])}


def media_hub(api: Api) -> Any:
    return api.client.server.app[MEDIA]


async def refused(
    api: Api,
    db: Database,
    method: str,
    path: str,
    status: int,
    detail: str,
    **call: Any,
) -> Any:
    before = await snapshot(db)
    answer = await api.call(method, path, **call)
    assert answer.status == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert detail in answer.body["detail"], answer.body["detail"]
    assert answer.headers.get("Access-Control-Allow-Origin") == "*"  # readable cross-origin
    assert await snapshot(db) == before
    assert media_hub(api).counts()["sessions"] == 0
    return answer


async def test_whip_refuses_bad_offers_with_the_reason(
    api: Api, db: Database, live: dict[str, Any]
) -> None:
    whip, host = f"/whip/{live['id']}", live["host"]
    good = await offer_sdp(send=True)
    await refused(
        api, db, "POST", whip, 415, "application/sdp", auth=host, data=good,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    await refused(api, db, "POST", whip, 422, "malformed SDP", auth=host, data="hello", headers=SDP)
    await refused(
        api, db, "POST", whip, 422, "malformed SDP", auth=host,
        data="v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", headers=SDP,
    )  # fmt: skip
    await refused(
        api, db, "POST", whip, 422, "no audio or video", auth=host,
        data=await offer_sdp(send=True, kinds=("data",)), headers=SDP,
    )  # fmt: skip
    unsupported = only_codecs(good, {"VP8": "VP9", "H264": "AV1"})
    answer = await refused(
        api, db, "POST", whip, 422, "no video codec the relay carries", auth=host,
        data=unsupported, headers=SDP,
    )  # fmt: skip
    assert "AV1, VP9" in answer.body["detail"] and "send VP8 or H.264" in answer.body["detail"]
    await refused(
        api, db, "POST", whip, 422, "a publisher sends", auth=host,
        data=await offer_sdp(send=False), headers=SDP,
    )  # fmt: skip
    await refused(
        api, db, "POST", whip, 413, "the limit is 65536", auth=host,
        data=good + "a=x-padding:" + "x" * 70_000 + "\r\n", headers=SDP,
    )  # fmt: skip


async def test_whip_refuses_callers_and_shows_that_may_not_publish(
    api: Api, db: Database, admin: str, live: dict[str, Any]
) -> None:
    good = await offer_sdp(send=True)
    whip = f"/whip/{live['id']}"
    await refused(api, db, "POST", whip, 401, "send credentials", data=good, headers=SDP)
    await refused(
        api, db, "POST", whip, 403, "viewer may not", auth=viewer_token(), data=good, headers=SDP
    )
    other = await create_show(api, admin, title="Another show")
    other_host = await host_token(db, other["id"])
    await refused(
        api, db, "POST", whip, 403, "another show", auth=other_host, data=good, headers=SDP
    )
    await refused(
        api, db, "POST", f"/whip/{other['id']}", 409, "scheduled; it must be live",
        auth=other_host, data=good, headers=SDP,
    )  # fmt: skip
    assert (await api.call("POST", f"/api/v1/shows/{live['id']}/end", auth=admin)).status == 200
    await refused(
        api, db, "POST", whip, 409, "ended; it must be live", auth=live["host"], data=good,
        headers=SDP,
    )  # fmt: skip
    await refused(
        api, db, "POST", "/whip/00000000-0000-0000-0000-000000000000", 404, "no show",
        auth=admin, data=good, headers=SDP,
    )  # fmt: skip


async def test_whep_refuses_until_published_and_offers_without_the_show_codec(
    api: Api, db: Database, live: dict[str, Any]
) -> None:
    whep = f"/whep/{live['id']}"
    viewer_offer = await offer_sdp(send=False)
    answer = await refused(api, db, "POST", whep, 503, "not started broadcasting", data=viewer_offer,
                           headers=SDP)  # fmt: skip
    assert answer.headers["Retry-After"] == "2"

    # The host publishes VP8 (the offer is answered; its peer never connects here).
    published = await api.call(
        "POST",
        f"/whip/{live['id']}",
        auth=live["host"],
        data=await offer_sdp(send=True),
        headers=SDP,
    )
    assert published.status == 201 and published.headers["Content-Type"] == "application/sdp"
    assert published.text.startswith("v=0") and "VP8/90000" in published.text
    assert "H264/90000" not in published.text  # the answer names exactly what is relayed
    location = published.headers["Location"]
    assert location.startswith(f"/whip/{live['id']}/")
    hub = media_hub(api)

    before = await snapshot(db)
    only_h264 = only_codecs(viewer_offer, {"VP8": "VP9"})
    answer = await api.call("POST", whep, data=only_h264, headers=SDP)
    assert answer.status == 422 and "relayed as VP8" in answer.body["detail"], answer.text
    answer = await api.call("POST", whep, data=await offer_sdp(send=True), headers=SDP)
    assert answer.status == 422 and "a viewer receives" in answer.body["detail"], answer.text
    assert await snapshot(db) == before
    assert hub.counts()["sessions"] == 1  # only the publisher

    # Sessions end only for their own show and role, and only once.
    session_id = location.rsplit("/", 1)[1]
    wrong = await api.call("DELETE", f"/whep/{live['id']}/{session_id}")
    assert wrong.status == 404
    denied = await api.call("DELETE", location, auth=viewer_token())
    assert denied.status == 403
    assert (await api.call("DELETE", location, auth=live["host"])).status == 200
    assert hub.counts()["sessions"] == 0
    assert (await api.call("DELETE", location, auth=live["host"])).status == 404
    stream = await api.call("GET", f"/api/v1/shows/{live['id']}/stream")
    assert stream.body["status"] == "stopped" and stream.body["video_codec"] == "VP8"


async def test_whip_and_whep_answer_cors_preflights(api: Api, live: dict[str, Any]) -> None:
    for path in (f"/whip/{live['id']}", f"/whep/{live['id']}"):
        answer = await api.call(
            "OPTIONS",
            path,
            headers={"Origin": "https://brand.example", "Access-Control-Request-Method": "POST"},
        )
        assert answer.status == 204
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in answer.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]
        assert answer.headers["Accept-Post"] == "application/sdp"
        assert "Location" in answer.headers["Access-Control-Expose-Headers"]


async def test_two_publishers_at_once_one_wins(api: Api, live: dict[str, Any]) -> None:
    offers = [await offer_sdp(send=True), await offer_sdp(send=True)]
    answers = await asyncio.gather(
        *(
            api.call("POST", f"/whip/{live['id']}", auth=live["host"], data=o, headers=SDP)
            for o in offers
        )
    )
    assert sorted(a.status for a in answers) == [201, 409], [a.text for a in answers]
    loser = next(a for a in answers if a.status == 409)
    assert "connecting" in loser.body["detail"]
    assert media_hub(api).counts() == {
        "sessions": 1,
        "publishers": 1,
        "broadcasts": 1,
        "tracks": 0,
    }
