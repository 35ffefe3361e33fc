"""A lean RTP send loop for relay viewers, in place of aiortc's `RTCRtpSender._run_rtp`.

aiortc's loop builds an `RtpPacket` object per packet, serializes its header extensions per
packet, and passes each datagram down four awaited layers (DTLS transport, ICE transport,
ICE connection, protocol) to reach `sendto`. For a relay that sends the same frames to
hundreds of viewers, that Python overhead is most of the CPU. This loop does per frame what
can be shared between a frame's packets (header extensions, statistics), and per packet
only packs a 12-byte header, encrypts (SRTP, in C) and writes to the nominated ICE
candidate pair's socket. It keeps what the rest of aiortc relies on: the state aiortc's
RTCP loop reads for sender reports, a packet history for NACK retransmissions (with RTX
when negotiated), and the events `RTCRtpSender.stop()` waits on.

It reaches into aiortc's private attributes. tests/test_media_relay.py checks that viewers
still receive, decode and recover, so an aiortc upgrade that moves them fails loudly."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from typing import Any

from aiortc import RTCRtpSender, clock
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket, wrap_rtx
from aiortc.utils import uint16_add, uint32_add

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHLL")
_EXTENSION_HEADER = struct.Struct("!HH")


def use_lean_sender(sender: RTCRtpSender) -> None:
    """Replace `sender`'s RTP loop and retransmission with the lean ones (before the
    connection starts)."""
    loop = _LeanLoop(sender)
    sender._run_rtp = loop.run  # type: ignore[method-assign]
    sender._retransmit = loop.retransmit  # type: ignore[method-assign]


_NTP_EPOCH = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)


class _Extensions:
    """RTP header extensions in the one-byte form (RFC 8285): the MID (fixed per sender) and
    abs-send-time (6.18 fixed-point seconds, 24 bits), as aiortc negotiates them."""

    def __init__(self, extensions_map: Any) -> None:
        ids = extensions_map._HeaderExtensionsMap__ids
        self.mid_id = ids.mid
        self.abs_id = ids.abs_send_time
        self._mid: str | None = None
        self._mid_bytes = b""

    def __call__(self, mid: str | None, now: float) -> bytes:
        if mid != self._mid:
            self._mid = mid
            encoded = mid.encode() if mid is not None and self.mid_id else b""
            self._mid_bytes = (
                bytes([self.mid_id << 4 | (len(encoded) - 1)]) + encoded if encoded else b""
            )
        body = self._mid_bytes
        if self.abs_id:
            value = int((now + _NTP_EPOCH) * 262144) & 0xFFFFFF  # seconds * 2**18
            body += bytes([self.abs_id << 4 | 2]) + value.to_bytes(3, "big")
        if not body:
            return b""
        body += b"\x00" * (-len(body) % 4)
        return _EXTENSION_HEADER.pack(0xBEDE, len(body) >> 2) + body


class _LeanLoop:
    def __init__(self, sender: RTCRtpSender) -> None:
        self.sender = sender
        # sequence number % RTP_HISTORY_SIZE -> (sequence number, unencrypted packet)
        self.history: dict[int, tuple[int, bytes]] = {}
        self.rtx_sequence = 0
        self.retransmitted = 0

    def _private(self, name: str) -> Any:
        return getattr(self.sender, f"_RTCRtpSender__{name}")

    def _set_private(self, name: str, value: Any) -> None:
        setattr(self.sender, f"_RTCRtpSender__{name}", value)

    async def run(self, codec: RTCRtpCodecParameters) -> None:
        sender = self.sender
        self._private("rtp_started").set()
        mid = self._private("mid")
        dtls = sender.transport
        srtp = dtls._tx_srtp
        connection = dtls.transport._connection
        payload_type = codec.payloadType
        assert payload_type is not None
        ssrc = sender._ssrc
        sequence = random.randrange(32768)  # below 2**15, as aiortc does, for SRTP's sake
        self.rtx_sequence = random.randrange(32768)
        timestamp_origin = random.getrandbits(32)
        history = self.history
        extensions = _Extensions(self._private("rtp_header_extensions_map"))
        pack = _HEADER.pack
        packets = octets = 0
        try:
            while True:
                frame = await self._private("track").recv()
                if not sender._enabled:
                    continue
                if dtls._state is not State.CONNECTED:
                    break
                payloads, frame_timestamp = frame.payloads, frame.timestamp
                timestamp = uint32_add(timestamp_origin, frame_timestamp)
                ntp = clock.current_ntp_time()
                pair = connection._nominated.get(1)
                if pair is None:
                    raise ConnectionError("not connected")
                sendto = pair.protocol.transport.sendto
                address = pair.remote_addr
                last = len(payloads) - 1
                for i, payload in enumerate(payloads):
                    marker = 0x80 if i == last else 0
                    # abs-send-time per packet: receivers estimate bandwidth from its spacing.
                    tail = extensions(mid, time.time())
                    data = (
                        pack(
                            0x90 if tail else 0x80, marker | payload_type, sequence, timestamp, ssrc
                        )
                        + tail
                        + payload
                    )
                    history[sequence % RTP_HISTORY_SIZE] = (sequence, data)
                    sendto(srtp.protect(data), address)
                    octets += len(payload)
                    sequence = uint16_add(sequence, 1)
                packets += len(payloads)
                # What aiortc's RTCP loop puts in sender reports.
                self._set_private("ntp_timestamp", ntp)
                self._set_private("rtp_timestamp", timestamp)
                self._set_private("octet_count", octets)
                self._set_private("packet_count", packets)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError, OSError):
            pass
        except Exception:
            log.exception("relay send loop failed")
        track = self._private("track")
        if track is not None:
            track.stop()
            sender.replaceTrack(None)
        self._private("rtp_exited").set()

    async def retransmit(self, sequence_number: int) -> None:
        """Resend a packet a viewer reported lost, if it is still in the history."""
        found = self.history.get(sequence_number % RTP_HISTORY_SIZE)
        if found is None or found[0] != sequence_number:
            return
        data = found[1]
        rtx_payload_type = self._private("rtx_payload_type")
        if rtx_payload_type is not None:
            packet = RtpPacket.parse(data, self._private("rtp_header_extensions_map"))
            packet = wrap_rtx(
                packet,
                payload_type=rtx_payload_type,
                sequence_number=self.rtx_sequence,
                ssrc=self.sender._rtx_ssrc,
            )
            self.rtx_sequence = uint16_add(self.rtx_sequence, 1)
            data = packet.serialize(self._private("rtp_header_extensions_map"))
        self.retransmitted += 1
        try:
            await self.sender.transport._send_rtp(data)
        except ConnectionError:
            pass
