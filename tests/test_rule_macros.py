"""The shared SQL macros rules build on (trailscan/rule_params.py), checked against Python's
`ipaddress` so that first-seen-network and many-networks rules group addresses correctly."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailscan import rule_params


@pytest.fixture(scope="module")
def con() -> Iterator[Any]:
    connection = duckdb.connect()
    rule_params.prepare(connection)
    yield connection
    connection.close()


def _prefix(con: Any, ip: str | None) -> str | None:
    return con.execute("SELECT ts_ip_prefix(?)", [ip]).fetchone()[0]


def _expected_v6(address: ipaddress.IPv6Address) -> str:
    groups = address.exploded.split(":")[:3]
    return ":".join(format(int(g, 16), "x") for g in groups) + "::/48"


@pytest.mark.parametrize(("ip", "expected"), [
    ("203.0.113.9", "203.0.113.0/24"),
    ("2001:db8::5", "2001:db8:0::/48"),
    ("2001:db8:0:1::5", "2001:db8:0::/48"),  # same /48 as the line above, written differently
    ("2001:0DB8:0000:ffff:1:2:3:4", "2001:db8:0::/48"),
    ("2001:db8:1::", "2001:db8:1::/48"),
    ("2001::1", "2001:0:0::/48"),
    ("1::2:3:4:5:6:7", "1:0:2::/48"),  # '::' standing for a single zero group
    ("::1", "0:0:0::/48"),
    ("ec2.amazonaws.com", None),
    ("AWS Internal", None),
    (None, None),
])
def test_ip_prefix_examples(con: Any, ip: str | None, expected: str | None) -> None:
    assert _prefix(con, ip) == expected


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**128 - 1), st.sampled_from(["compressed", "exploded"]),
       st.booleans())
def test_ip6_prefix_matches_ipaddress(con: Any, value: int, form: str, upper: bool) -> None:
    address = ipaddress.IPv6Address(value)
    text = getattr(address, form)
    text = text.upper() if upper else text
    assert _prefix(con, text) == _expected_v6(address)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ip4_prefix_matches_ipaddress(con: Any, value: int) -> None:
    address = ipaddress.IPv4Address(value)
    network = ipaddress.IPv4Network(f"{address}/24", strict=False)
    assert _prefix(con, str(address)) == str(network)
