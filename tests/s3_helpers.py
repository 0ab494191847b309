"""A real S3 endpoint for tests and benchmarks: moto's standalone server on a free loopback port,
uploads of synthetic trails with their digest signatures as object metadata, and a small HTTP
proxy that can cut response bodies mid-transfer or answer 403, to test failure handling."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SIDECAR = ".metadata.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's ThreadedMotoServer on 127.0.0.1:<free port>; yields its URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name="us-east-1").client(
        "s3", endpoint_url=endpoint, config=Config(max_pool_connections=16))


def upload_tree(client: Any, bucket: str, root: Path, *, threads: int = 8) -> int:
    """Put every file under `root` at its relative key; a digest's `.metadata.json` sidecar
    becomes its S3 user metadata (x-amz-meta-signature, x-amz-meta-signature-algorithm), as
    CloudTrail delivers it. Sidecars and public-keys.json are not uploaded."""
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(SIDECAR)
             and p.name != "public-keys.json"]

    def put(path: Path) -> None:
        side = path.with_name(path.name + SIDECAR)
        meta = json.loads(side.read_text()) if side.is_file() else {}
        client.put_object(Bucket=bucket, Key=path.relative_to(root).as_posix(),
                          Body=path.read_bytes(), Metadata=meta)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, files))
    return len(files)


class Proxy:
    """HTTP proxy in front of the moto server. `cut[substring] = n` cuts the body of the next n
    GET responses whose path contains the substring after half of it (n < 0: always);
    `deny = True` answers every request with 403 AccessDenied, `deny_get` only object GETs."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.cut: dict[str, int] = {}
        self.deny = False
        self.deny_get = False  # 403 for object GETs only (listing still works)
        self.cuts_done = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.deny or (proxy.deny_get and self.command == "GET"
                                  and "list-type" not in self.path):
                    payload = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied'
                               b"</Code><Message>Access Denied</Message></Error>")
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port,
                                                  timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.upstream.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                conn.close()
                cut = self.command == "GET" and proxy._should_cut(self.path)
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length",
                                            "server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if cut:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _should_cut(self, path: str) -> bool:
        if "list-type" in path:
            return False
        with self.lock:
            for needle, left in self.cut.items():
                if needle in path and left != 0:
                    self.cut[needle] = left - 1 if left > 0 else left
                    self.cuts_done += 1
                    return True
        return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
