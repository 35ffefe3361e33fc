"""Where finished videos live: the data directory always, and an S3-compatible bucket when one
is configured (AWS S3, MinIO, Cloudflare R2, Alibaba OSS, Tencent COS...).

The data directory is the working area: live HLS, ffmpeg's partial files and each job's
output are written there first. A finished file (a clip, an upload, a poster, a replay's
segments) is then *published*: with a bucket, copied to it under `SHOWROOM_S3_PREFIX` plus
its path in the data directory, and, unless other work still reads it here (a replay's
segments, which clips are cut from), removed from the disk. A file asked for that is not on
this node's disk is answered with a redirect to the bucket (its public URL, or a presigned
one), so the bucket, or a CDN in front of it, carries the bytes, and any node of a
deployment can answer for files another node made.

The client is aiobotocore (botocore's async client): credentials come the usual AWS way
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role). An upload that
fails leaves the file on disk, where it is still served from; the failure is logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger("showroom.storage")

MADE_CACHE = "public, max-age=3600"  # a clip, an upload or a poster, wherever it is served
PART_BYTES = 8 * 1024 * 1024  # multipart uploads above this, in parts of this size
PUBLISH_CONCURRENCY = 8  # a replay's segments go up this many at a time


@dataclass(frozen=True, slots=True)
class Bucket:
    """An S3-compatible bucket (settings SHOWROOM_S3_*)."""

    name: str
    endpoint_url: str | None = None  # None: AWS's own endpoint for the region
    region: str | None = None
    prefix: str = ""  # keys are prefix + the file's path in the data directory
    public_url: str | None = None  # files are read at public_url + key; None: presigned URLs
    url_ttl_s: int = 3600  # how long a presigned URL is valid


class Storage:
    """The data directory, plus a bucket when `bucket` is set. `start` opens the bucket's
    client and `close` closes it (create_app does both)."""

    def __init__(self, data_dir: Path, bucket: Bucket | None = None) -> None:
        self.data_dir = data_dir
        self.bucket = bucket
        self._client: S3Client | None = None
        self._exit = contextlib.AsyncExitStack()
        self.published = 0  # files copied to the bucket by this process
        self.failed = 0  # copies that failed (the file stayed on disk)

    @property
    def remote(self) -> bool:
        return self.bucket is not None

    async def start(self) -> None:
        if self.bucket is None or self._client is not None:
            return
        session = get_session()
        config = AioConfig(
            signature_version="s3v4",
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        self._client = await self._exit.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=self.bucket.endpoint_url,
                region_name=self.bucket.region,
                config=config,
            )
        )

    async def close(self) -> None:
        self._client = None
        await self._exit.aclose()

    def local(self, relative: str) -> Path:
        return self.data_dir / relative

    def key(self, relative: str) -> str:
        assert self.bucket is not None
        return self.bucket.prefix + relative

    async def publish(
        self, relative: str, content_type: str, *, cache_control: str, keep_local: bool = False
    ) -> bool:
        """The file at `relative` (in the data directory) is finished: copy it to the bucket,
        and remove it here unless `keep_local`. False when there is no bucket or the copy
        failed (the file stays here and is served from here)."""
        if self._client is None:
            return False
        path = self.local(relative)
        try:
            await self._put(path, self.key(relative), content_type, cache_control)
        except Exception as exc:
            self.failed += 1
            log.warning("could not copy %s to the bucket (kept on disk): %s", relative, exc)
            return False
        self.published += 1
        if not keep_local:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(path.unlink, missing_ok=True)
        return True

    async def publish_many(
        self, files: list[tuple[str, str]], *, cache_control: str, keep_local: bool
    ) -> int:
        """Publish each (relative path, content type), a few at a time; how many went up."""
        gate = asyncio.Semaphore(PUBLISH_CONCURRENCY)

        async def one(relative: str, content_type: str) -> bool:
            async with gate:
                return await self.publish(
                    relative, content_type, cache_control=cache_control, keep_local=keep_local
                )

        done = await asyncio.gather(*(one(r, t) for r, t in files))
        return sum(done)

    async def _put(self, path: Path, key: str, content_type: str, cache_control: str) -> None:
        assert self._client is not None and self.bucket is not None
        size = (await asyncio.to_thread(path.stat)).st_size
        common: dict[str, Any] = {
            "Bucket": self.bucket.name,
            "Key": key,
            "ContentType": content_type,
            "CacheControl": cache_control,
        }
        if size <= PART_BYTES:
            body = await asyncio.to_thread(path.read_bytes)
            await self._client.put_object(Body=body, **common)
            return
        # Large files (uploads) in parts, so memory stays at one part whatever the size.
        started = await self._client.create_multipart_upload(**common)
        upload_id = started["UploadId"]
        parts = []
        try:
            with path.open("rb") as source:
                number = 1
                while chunk := await asyncio.to_thread(source.read, PART_BYTES):
                    part = await self._client.upload_part(
                        Bucket=self.bucket.name,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    parts.append({"ETag": part["ETag"], "PartNumber": number})
                    number += 1
            await self._client.complete_multipart_upload(
                Bucket=self.bucket.name,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket.name, Key=key, UploadId=upload_id
                    )
                )
            raise

    async def url(self, relative: str) -> str | None:
        """Where a client reads a published file: the bucket's public URL for it, or a
        presigned GET valid for url_ttl_s. None without a bucket."""
        if self.bucket is None or self._client is None:
            return None
        key = self.key(relative)
        if self.bucket.public_url is not None:
            return self.bucket.public_url.rstrip("/") + "/" + key
        url: str = await self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket.name, "Key": key},
            ExpiresIn=self.bucket.url_ttl_s,
        )
        return url

    async def remove(self, relative: str) -> None:
        """Delete the file here and in the bucket (a deleted video)."""
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self.local(relative).unlink, missing_ok=True)
        if self._client is not None and self.bucket is not None:
            try:
                await self._client.delete_object(Bucket=self.bucket.name, Key=self.key(relative))
            except Exception as exc:
                log.warning("could not delete %s from the bucket: %s", relative, exc)
