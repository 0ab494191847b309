"""Coverage-guided fuzzing (atheris / libFuzzer) of the readers: bytes -> records -> Arrow.

    python tests/fuzz_readers.py -runs=200000              # or -max_total_time=60
    python tests/fuzz_readers.py -atheris_runs=... corpus/ # with a corpus directory

Any input must end in BadInput/NotEvents (the whole object is quarantined or set aside) or in a
table plus rejected records that together account for every record read. Anything else
(another exception, lost or invented records) is a crash that libFuzzer reports with the input.
tests/test_fuzz.py runs it for a few seconds in CI.
"""

from __future__ import annotations

import gzip
import json
import sys

import atheris

with atheris.instrument_imports():
    from trailscan import records
    from trailscan.errors import BadInput, NotEvents

LIMIT = 1 << 20

_RECORD = {
    "eventVersion": "1.09", "eventTime": "2024-03-01T12:00:00Z", "eventID": "e-1",
    "eventName": "GetObject", "eventSource": "s3.amazonaws.com", "awsRegion": "us-east-1",
    "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/s",
                     "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::1:role/r"},
                                        "attributes": {"mfaAuthenticated": "true"}}},
    "requestParameters": {"bucketName": "b"}, "resources": [{"ARN": "arn:aws:s3:::b"}],
    "readOnly": True, "tlsDetails": {"tlsVersion": "TLSv1.3"},
}
SEEDS = [
    json.dumps({"Records": [_RECORD, _RECORD | {"eventID": "e-2"}]}).encode(),
    gzip.compress(json.dumps({"Records": [_RECORD]}).encode()),
    (json.dumps(_RECORD) + "\n" + json.dumps(_RECORD | {"eventID": "e-3"}) + "\n").encode(),
    json.dumps({"Events": [{"CloudTrailEvent": json.dumps(_RECORD)}]}).encode(),
    json.dumps([_RECORD]).encode(),
]


def check(data: bytes) -> None:
    """The property (shared with the hypothesis tests)."""
    try:
        parsed = records.parse(data, "fuzz", LIMIT)
    except (BadInput, NotEvents) as exc:
        assert "\n" not in str(exc), str(exc)
        return
    rows = 0 if parsed.table is None else parsed.table.num_rows
    assert rows + len(parsed.rejected) == parsed.events_read, (rows, parsed)
    indexes = [r.index for r in parsed.rejected]
    assert len(set(indexes)) == len(indexes)
    assert all(0 <= i < parsed.events_read for i in indexes)
    for rejected in parsed.rejected:
        assert "\n" not in rejected.reason and len(rejected.reason) < 1000, rejected.reason


def main() -> None:
    if not any(not a.startswith("-") for a in sys.argv[1:]):  # no corpus dir: seed in memory
        for seed in SEEDS:
            check(seed)
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
