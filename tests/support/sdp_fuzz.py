"""A seeded mutator of SDP offers: the same seed gives the same offers on every machine.

Each case applies one to three edits to a real aiortc offer: lines deleted, duplicated, swapped
or cut short; values replaced by empty, huge, negative or non-ASCII text; attributes that aiortc's
parser handles badly inserted (a bare ``a=fingerprint``, ``a=fmtp`` with no rtpmap, a BUNDLE group
naming a missing m-line, candidates with impossible ports, m-lines its regex rejects).
"""

from __future__ import annotations

import random

TRICKY_LINES = (
    "a=fingerprint:",
    "a=fingerprint:sha-256",
    "a=fingerprint:md5 00:11",
    "a=fmtp:97 apt=96",
    "a=fmtp:abc",
    "a=rtpmap:",
    "a=rtpmap:111",
    "a=rtpmap:x opus/48000/2",
    "a=group:BUNDLE 0 1 7",
    "a=group:BUNDLE",
    "a=group:LS 0",
    "a=mid:",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=setup:nonsense",
    "a=candidate:1 1 udp 1 192.0.2.1 99999 typ host",
    "a=candidate:1 1 sctp 1 192.0.2.1 9 typ host",
    "a=candidate:1 1 udp 1 not-an-ip 9 typ host",
    "a=candidate:",
    "a=ssrc:1",
    "a=ssrc-group:FID",
    "a=rtcp-fb:",
    "a=rtcp:abc",
    "a=extmap:x urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=msid:",
    "a=sctp-port:x",
    "a=max-message-size:-1",
    "m=audio",
    "m=audio x UDP/TLS/RTP/SAVPF 111",
    "m=video 9 UDP/TLS/RTP/SAVPF",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN",
    "c=IN IP4",
    "o=-",
    "t=x y",
    "b=AS:",
    "a=sendrecv:extra",
    "v=1",
)
ODD_VALUES = ("", " ", "0", "-1", "99999999999999999999", "x" * 2000, "é€", "\t", ":", "::")


def _mutate(rng: random.Random, lines: list[str]) -> list[str]:
    lines = list(lines)
    op = rng.randrange(8)
    i = rng.randrange(len(lines)) if lines else 0
    if not lines:
        return [rng.choice(TRICKY_LINES)]
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[i])
    elif op == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 3:
        lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    elif op == 4:
        head, sep, _ = lines[i].partition(":")
        if not sep:
            head, sep, _ = lines[i].partition("=")
        lines[i] = head + sep + rng.choice(ODD_VALUES)
    elif op == 5:
        lines.insert(i, rng.choice(TRICKY_LINES))
    elif op == 6:
        words = lines[i].split(" ")
        k = rng.randrange(len(words))
        words[k] = rng.choice(ODD_VALUES)
        lines[i] = " ".join(words)
    else:
        chars = list(lines[i]) or ["a"]
        chars[rng.randrange(len(chars))] = chr(rng.choice((0, 9, 32, 61, 58, 127, 233, 0x202E)))
        lines[i] = "".join(chars)
    return lines


def mutated_offers(offer: str, count: int, seed: int) -> list[str]:
    """``count`` offers derived from ``offer``, reproducible from ``seed``."""
    rng = random.Random(seed)
    base = offer.strip().split("\r\n")
    cases = []
    for _ in range(count):
        lines = base
        for _ in range(rng.randint(1, 3)):
            lines = _mutate(rng, lines)
        cases.append("\r\n".join(lines) + "\r\n")
    return cases
