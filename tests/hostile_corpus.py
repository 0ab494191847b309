"""A corpus of hostile and broken input, generated (a few hundred KB on disk), never stored.

    python tests/hostile_corpus.py DIR      # write it somewhere to try `trailscan ingest DIR`

`write_corpus(root)` writes every case under `root` and returns what trailscan must make of each:
ingested whole, a whole-file quarantine with a reason, a partial file (good records in, bad ones
quarantined), or an entry that is not a readable file at all.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import drop_fields, make_record

BOMB_OUTPUT = 64 * 1024 * 1024  # bytes the bomb inflates to (from ~64 KB on disk)
CORPUS_LIMIT = 8 * 1024 * 1024  # --max-file-bytes for a corpus run: the bomb is over, the rest not


@dataclass
class Case:
    """What must become of one corpus entry."""

    path: Path
    outcome: str  # ingested | quarantined | partial | unreadable
    reason: str = ""  # substring of the one-line reason (file or every rejected record)
    good: list[str] = field(default_factory=list)  # eventIDs that must land in the lake
    bad: int = 0  # records that must be quarantined (partial files)
    reasons: list[str] = field(default_factory=list)  # per-record reason substrings, in order


def _records(records: list[Any]) -> bytes:
    return json.dumps({"Records": records}).encode()


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _bomb(size: int) -> bytes:
    """A valid gzip stream of `size` spaces, written incrementally (small memory, ~1000:1)."""
    out = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b" " * (1 << 20)
    parts = [out.compress(b'{"Records": [')]
    for _ in range(size // len(chunk)):
        parts.append(out.compress(chunk))
    parts.append(out.compress(b"]}") + out.flush())
    return b"".join(parts)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# One value of a wrong type for each kind of column; a record each (field -> value).
WRONG_TYPES: dict[str, Any] = {
    "eventVersion": {"major": 1},
    "userIdentity": [],  # Arrow would read [] as an empty struct
    "eventTime": 1709294400,
    "eventTime ": "yesterday at noon",  # stripped below: an unparseable time string
    "eventSource": ["s3.amazonaws.com"],
    "eventName": 42,
    "awsRegion": True,
    "sourceIPAddress": {"ip": "1.2.3.4"},
    "userAgent": [1, 2],
    "errorCode": 3.5,
    "requestID": False,
    "eventID": None,
    "readOnly": "maybe",
    "resources": {"ARN": "arn:aws:s3:::b"},
    "resources[]": [[]],  # an item that is not an object
    "eventType": 7,
    "managementEvent": "yes",
    "recipientAccountId": 111122223333,
    "tlsDetails": "TLSv1.3",
    "userIdentity.sessionContext": [["sourceIdentity", "x"]],
    "userIdentity.type": {"t": 1},
    "userIdentity.sessionContext.attributes.mfaAuthenticated": [True],
    "vpcEndpointId": 2**70,
}


def _wrong(name: str, value: Any) -> dict[str, Any]:
    record = make_record()
    name = name.strip()
    if name == "resources[]":
        record["resources"] = value
        return record
    node = record
    *parents, leaf = name.split(".")
    for parent in parents:
        node = node[parent]
    node[leaf] = value
    return record


def write_corpus(root: Path) -> list[Case]:
    """Write every hostile case under `root`; returns the expectations (see Case)."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def put(name: str, data: bytes, outcome: str, reason: str = "", good: list[str] | None = None,
            bad: int = 0, reasons: list[str] | None = None) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        cases.append(Case(path, outcome, reason, good or [], bad, reasons or []))
        return path

    def goods(n: int) -> list[dict[str, Any]]:
        return [make_record(eventName=f"Good{i}") for i in range(n)]

    # Enough ordinary files for the parallel (multi-process) path to be used.
    for i in range(24):
        recs = goods(3)
        put(f"good/ok-{i:02d}.json.gz", _gz(_records(recs)), "ingested",
            good=[r["eventID"] for r in recs])

    # --- gzip -------------------------------------------------------------------------------
    whole = _gz(_records(goods(20)))
    put("gzip/truncated.json.gz", whole[: len(whole) // 2], "quarantined", "truncated gzip")
    put("gzip/header-only.json.gz", whole[:10], "quarantined", "gzip")
    corrupt = bytearray(whole)
    for i in range(40, 60):
        corrupt[i] ^= 0xFF
    put("gzip/corrupt.json.gz", bytes(corrupt), "quarantined", "corrupt gzip data")
    crc = bytearray(whole)
    crc[-8] ^= 0xFF  # CRC32 of the member: the data inflates, the check fails
    put("gzip/bad-crc.json.gz", bytes(crc), "quarantined", "corrupt gzip data")
    recs = goods(4)
    text = _records(recs)
    put("gzip/concatenated-members.json.gz", _gz(text[:37]) + _gz(text[37:]), "ingested",
        good=[r["eventID"] for r in recs])
    put("gzip/trailing-garbage.json.gz", _gz(_records(goods(2))) + b"GARBAGE\x00\x01",
        "quarantined", "trailing data after the gzip stream")
    put("gzip/trailing-zeros.json.gz", _gz(_records(goods(2))) + b"\x00" * 512, "quarantined",
        "trailing data after the gzip stream")
    put("gzip/bomb.json.gz", _bomb(BOMB_OUTPUT), "quarantined", "gzip bomb")

    # --- encoding and JSON ------------------------------------------------------------------
    raw = _records(goods(2)).replace(b'"s3.amazonaws.com"', b'"s3.\xffamazonaws.com"', 1)
    put("json/invalid-utf8.json", raw, "quarantined", "invalid UTF-8")
    recs = goods(2)
    lines = [json.dumps(recs[0]).encode(), b'{"eventID": "\xc3\x28", "eventTime": "x"}',
             json.dumps(recs[1]).encode()]
    put("json/invalid-utf8-line.ndjson", b"\n".join(lines) + b"\n", "partial",
        good=[r["eventID"] for r in recs], bad=1, reasons=["invalid UTF-8"])
    put("json/invalid.json", _records(goods(2))[:-7] + b"}{", "quarantined", "invalid JSON")
    put("json/nul-bytes.json", b"\x00" * 64, "quarantined", "invalid JSON")
    put("json/deep-file.json", ('{"Records": ' + _deep(100_000) + "}").encode(), "quarantined",
        "nested too deeply")
    recs = goods(2)
    deep = make_record(requestParameters={"policy": "DEEP"})
    put("json/deep-value.json",
        _records([*recs, deep]).replace(b'"DEEP"', _deep(900).encode()), "ingested",
        good=[r["eventID"] for r in [*recs, deep]])
    recs = goods(2)
    lines = [json.dumps(recs[0]), '{"Records": ' + _deep(5000) + "}", json.dumps(recs[1])]
    put("json/deep-line.ndjson", "\n".join(lines).encode(), "partial",
        good=[r["eventID"] for r in recs], bad=1, reasons=["nested too deeply"])
    odd = make_record(requestParameters={"name": "\ud800 lone surrogate", "n": 2**70})
    paired = make_record(requestParameters={"name": "\U0001f980 paired", "n": 2**70})
    put("json/surrogate-and-bigint.json",  # a lone surrogate is not Unicode: quarantined
        json.dumps({"Records": [odd, paired]}, ensure_ascii=True).encode(), "partial",
        good=[paired["eventID"]], bad=1, reasons=["unpaired UTF-16 surrogate"])

    # --- not CloudTrail, empty ------------------------------------------------------------------
    put("other/object.json", b'{"hello": "world", "line\\nbreak": 1}', "quarantined",
        "JSON is not CloudTrail")
    put("other/scalar.json", b"42", "quarantined", "JSON is not CloudTrail")
    put("other/string.json", b'"Records"', "quarantined", "JSON is not CloudTrail")
    put("other/records-object.json", b'{"Records": {"eventID": "x"}}', "quarantined",
        "Records is not an array")
    put("other/empty.json", b"", "quarantined", "empty file")
    put("other/empty.json.gz", _gz(b""), "quarantined", "empty file")
    put("other/blank.json", b" \n\t\r\n ", "quarantined", "empty file")
    recs = goods(1)
    put("other/non-objects.json", _records([1, "x", None, [], *recs]), "partial",
        good=[recs[0]["eventID"]], bad=4, reasons=["record is not a JSON object"] * 4)

    # --- records: missing fields, wrong types ---------------------------------------------------
    recs = goods(2)
    missing = [drop_fields(make_record(), name) for name in
               ("eventTime", "eventID", "eventName", "eventSource")]
    put("records/missing-fields.json", _records([recs[0], *missing, recs[1]]), "partial",
        good=[r["eventID"] for r in recs], bad=4,
        reasons=[f"'{n}' is a required property"
                 for n in ("eventTime", "eventID", "eventName", "eventSource")])
    recs = goods(2)
    wrong = [_wrong(name, value) for name, value in WRONG_TYPES.items()]
    put("records/wrong-types.json", _records([recs[0], *wrong, recs[1]]), "partial",
        good=[r["eventID"] for r in recs], bad=len(wrong),
        reasons=[name.split(".")[0].strip().rstrip("[]") for name in WRONG_TYPES])

    # --- entries that are not regular files ---------------------------------------------------
    special = root / "special"
    special.mkdir(exist_ok=True)
    (special / "self-loop").symlink_to("self-loop")
    (special / "loop-a").symlink_to("loop-b")
    (special / "loop-b").symlink_to("loop-a")
    for name in ("self-loop", "loop-a", "loop-b"):
        cases.append(Case(special / name, "unreadable", "symbolic links"))
    (special / "dangling").symlink_to("no-such-file")
    cases.append(Case(special / "dangling", "unreadable", "cannot stat"))
    (special / "dir-loop").symlink_to(".", target_is_directory=True)  # not followed: no loop
    os.mkfifo(special / "fifo")
    cases.append(Case(special / "fifo", "unreadable", "not a regular file"))
    with _unix_socket(special / "socket"):
        pass
    cases.append(Case(special / "socket", "unreadable", "not a regular file"))
    for device in ("null", "zero", "urandom"):
        (special / f"dev-{device}").symlink_to(f"/dev/{device}")
        cases.append(Case(special / f"dev-{device}", "unreadable", "not a regular file"))
    return cases


@contextmanager
def _unix_socket(path: Path) -> Iterator[None]:
    """Leave a socket file at `path` (bound, then closed: the inode stays)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        yield
    finally:
        sock.close()


if __name__ == "__main__":
    for case in write_corpus(Path(sys.argv[1])):
        print(f"{case.outcome:12} {case.path}  {case.reason}")
