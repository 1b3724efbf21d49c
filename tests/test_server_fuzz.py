"""Generated offers: the parser refuses every bad one with OfferError, and the server with a 4xx."""

from __future__ import annotations

import asyncio
import gc
import re

import pytest
from lipstream.server.http.sdp_check import OfferError, check_publisher_offer, check_viewer_offer

from tests.support.inprocess import LoopErrors, app_client, make_offer
from tests.support.sdp_fuzz import mutated_offers

PARSER_CASES = 10_000
SERVER_CASES = 150
SDP = {"Content-Type": "application/sdp"}


async def test_parser_raises_only_offer_error_on_10000_generated_offers() -> None:
    offer = await make_offer()
    accepted = refused = 0
    for i, case in enumerate(mutated_offers(offer, PARSER_CASES, seed=12)):
        checks = (
            (check_publisher_offer, check_viewer_offer) if i < 2_000 else (check_publisher_offer,)
        )
        for check in checks:
            try:
                check(case)
                accepted += 1
            except OfferError as exc:
                assert str(exc)  # a reason the client can read
                refused += 1
    assert accepted + refused == PARSER_CASES + 2_000
    assert refused > PARSER_CASES // 4  # the mutator really breaks offers (else this tests nothing)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda s: s.replace("a=fingerprint:sha-256 ", "a=fingerprint:", 1), "malformed"),
        (lambda s: s.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 7"), "group names"),
        (lambda s: s.replace("a=rtpmap:9 ", "a=fmtp:120 x=1\r\na=rtpmap:9 ", 1), "StopIteration"),
        (lambda s: "\r\n".join(x for x in s.split("\r\n") if "fingerprint" not in x), "DTLS"),
        (lambda s: re.sub(r"m=audio \d+", "m=audio x", s), "malformed"),
        (lambda s: re.sub(r"(udp \d+ \S+ )\d+( typ)", r"\g<1>99999\2", s, count=1), "port"),
    ],
)
async def test_findings_from_the_review_are_offer_errors(edit, reason: str) -> None:  # noqa: ANN001
    offer = await make_offer()
    edited = edit(offer)
    assert edited != offer  # the edit applies to aiortc's offer
    with pytest.raises(OfferError, match=reason):
        check_publisher_offer(edited)


async def test_server_answers_4xx_or_201_to_generated_offers_and_leaks_no_error() -> None:
    offer = await make_offer()
    statuses: dict[int, int] = {}
    async with app_client(max_sessions=2) as client:
        with LoopErrors() as errors:
            for case in mutated_offers(offer, SERVER_CASES, seed=2026):
                async with client.post("/whip", data=case.encode(), headers=SDP) as response:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status == 201:
                        await client.delete(response.headers["Location"])
            for case in mutated_offers(offer.replace("sendrecv", "recvonly"), 30, seed=7):
                async with client.post("/whep/nobody", data=case.encode(), headers=SDP) as response:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
            await asyncio.sleep(0.5)  # aiortc's connect tasks of the accepted offers run now
            gc.collect()  # "Task exception was never retrieved" is reported on collection
        assert all(status < 500 for status in statuses), statuses
        assert statuses.get(201, 0) > 0 and statuses.get(400, 0) > 0, statuses
        assert errors.summary() == []


async def test_charset_bogus_is_400() -> None:
    async with app_client() as client:
        headers = {"Content-Type": "application/sdp; charset=bogus"}
        async with client.post("/whip", data=(await make_offer()).encode(), headers=headers) as r:
            assert r.status == 400
            assert "charset" in await r.text()
