"""The `showroom` command as a newcomer runs it: migrate, seed-demo (twice), serve, tokens,
imports, and settings errors that name the variable."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SHOWROOM = [sys.executable, "-m", "server.cli"]


def run(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHOWROOM, *args], env=env, capture_output=True, text=True, timeout=120, **kwargs
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SHOWROOM_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    return {**clean, "SHOWROOM_DATA_DIR": str(tmp_path / "data")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, *, token: str | None = None, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            ctype = response.headers.get("Content-Type", "")
            return response.status, json.loads(body) if "json" in ctype else body.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@contextmanager
def serving(env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """`showroom serve` as a subprocess; yields its base URL and, after exit, its log lines."""
    port = int(env["SHOWROOM_PORT"])
    log: list[str] = []
    server = subprocess.Popen(
        [*SHOWROOM, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", log
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=15)
        log.extend(stderr.splitlines())


def test_demo_setup_twice_then_serve(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    env["SHOWROOM_PORT"] = str(port)
    assert run(["migrate"], env).returncode == 0
    first = run(["seed-demo"], env)
    assert first.returncode == 0, first.stderr
    assert "products created" in first.stdout
    assert (tmp_path / "data" / "showroom.db").exists()
    # Running it twice keeps the data (and the same show) and mints fresh tokens.
    assert run(["migrate"], env).returncode == 0
    second = run(["seed-demo"], env)
    assert "products already there" in second.stdout
    show_urls = [re.findall(r"/studio/([0-9a-f-]{36})", out.stdout) for out in (first, second)]
    assert show_urls[0] == show_urls[1] and len(show_urls[0]) == 1
    show_id = show_urls[0][0]
    host = re.search(r"(shr_host_\S+)", second.stdout).group(1)  # type: ignore[union-attr]
    admin = re.search(r"(shr_admin_\S+)", second.stdout).group(1)  # type: ignore[union-attr]
    old_admin = re.search(r"(shr_admin_\S+)", first.stdout).group(1)  # type: ignore[union-attr]
    assert f"http://127.0.0.1:{port}/watch/{show_id}" in second.stdout
    assert f"http://127.0.0.1:{port}/admin" in second.stdout

    with serving(env) as (base, log):
        status, products = http(f"{base}/api/v1/products", token=admin)
        assert status == 200 and products["total"] == 8
        assert all(
            p["title"]["zh-HK"] and p["title"]["en"] and p["price"]["currency"] == "HKD"
            for p in products["items"]
        )
        assert http(f"{base}/api/v1/products", token=old_admin)[0] == 401  # reseeding revoked it
        status, show = http(f"{base}/api/v1/shows/{show_id}/start", token=host, method="POST")
        assert status == 200 and show["state"] == "live"
        for page in ("/admin", f"/studio/{show_id}", f"/watch/{show_id}"):
            status, html = http(base + page)
            assert status == 200 and "<html" in html.lower(), page
    # One log line per request, in text format by default.
    assert any(re.search(r"GET /api/v1/products 200 [\d.]+ms", line) for line in log), log


def test_json_logs(env: dict[str, str]) -> None:
    port = free_port()
    env.update(SHOWROOM_PORT=str(port), SHOWROOM_LOG_FORMAT="json")
    assert run(["migrate"], env).returncode == 0
    with serving(env) as (base, log):
        http(f"{base}/api/v1/shows")
    entries = [json.loads(line) for line in log if line.startswith("{")]
    assert {"method": "GET", "path": "/api/v1/shows", "status": 401}.items() <= entries[-1].items()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SHOWROOM_PORT", "eighty"), ("DATABASE_URL", "mysql://db/x"), ("SHOWROOM_LOG_FORMAT", "xml")],
)
def test_invalid_setting_stops_start_up_naming_it(
    env: dict[str, str], variable: str, value: str
) -> None:
    env[variable] = value
    result = run(["serve"], env)
    assert result.returncode == 2
    assert variable in result.stderr and "invalid setting" in result.stderr


def test_create_token(env: dict[str, str]) -> None:
    assert run(["migrate"], env).returncode == 0
    admin = run(["create-token", "--role", "admin", "--name", "ERP"], env)
    assert admin.returncode == 0 and admin.stdout.strip().startswith("shr_admin_")
    host_any = run(["create-token", "--role", "host"], env)
    assert host_any.stdout.strip().startswith("shr_host_")
    unknown = run(
        ["create-token", "--role", "host", "--show", "00000000-0000-4000-8000-000000000000"], env
    )
    assert unknown.returncode == 1 and "no show" in unknown.stderr
    malformed = run(["create-token", "--role", "host", "--show", "tomorrow"], env)
    assert malformed.returncode == 2 and "not a show id" in malformed.stderr
    scoped_admin = run(
        ["create-token", "--role", "admin", "--show", "00000000-0000-4000-8000-000000000000"], env
    )
    assert scoped_admin.returncode == 2


def test_import_products(env: dict[str, str], tmp_path: Path) -> None:
    assert run(["migrate"], env).returncode == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,title_en,price\nA-1,Alpha,10\nB-1,Beta,-3\n", encoding="utf-8")
    refused = run(["import-products", str(bad)], env)
    assert refused.returncode == 1
    assert "row 2 (B-1) price: must not be negative" in refused.stderr
    assert "Nothing imported" in refused.stderr
    partial = run(["import-products", "--valid-only", str(bad)], env)
    assert partial.returncode == 0 and "1 created" in partial.stdout
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            [
                {
                    "sku": "A-1",
                    "title": {"en": "Alpha v2"},
                    "price": {"amount_minor": 900, "currency": "HKD"},
                }
            ]
        )
    )
    updated = run(["import-products", str(good)], env)
    assert updated.returncode == 0 and "1 updated" in updated.stdout
    missing = run(["import-products", str(tmp_path / "nope.csv")], env)
    assert missing.returncode == 1 and "No such file" in missing.stderr
