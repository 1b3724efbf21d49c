"""Prints the README's results table from ``bench/results/*.json`` (so the README quotes files).

python -m bench.summarize
"""

from __future__ import annotations

import json

from bench.report import RESULTS
from bench.stages import STAGES


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def latency_rows(driver: str, sessions: int = 1) -> list[str]:
    """Glass-to-glass, its stages and the A/V offset; the worst session when there are several."""
    data = _load(f"latency-{driver}-{sessions}s")
    if data is None:
        return []
    s = max(data["per_session"], key=lambda r: r["latency_ms"]["p95"] or 0.0)
    lat, av = s["latency_ms"], s["av_offset_ms"]
    who = f"`{driver}`" + (f", worst of {sessions} sessions at once" if sessions > 1 else "")
    rows = [
        f"| lips after voice onset, p50 / p95 / p99 ({lat['n']} onsets), {who} | "
        f"{_ms(lat['p50'])} / {_ms(lat['p95'])} / {_ms(lat['p99'])} | `{data['command']}` |",
        f"| returned voice after lips, p50 / p95, {who} | "
        f"{_ms(av['p50'])} / {_ms(av['p95'])} | same run |",
    ]
    if sessions > 1:
        rows.append(
            f"| lowest fps of the {sessions} sessions | {min(data['fps']):.1f} | same run |"
        )
    stages = s.get("stages_ms")
    if stages:
        split = " / ".join(f"{stages[k]['mean_ms']:.0f}" for k in STAGES)
        rows.append(
            f"| where that time goes, mean ms: audio in (frame + look-ahead + transport) / motion "
            f"/ render / encode-send-receive-decode | {split} | same run |"
        )
    return rows


def capacity_rows(driver: str) -> list[str]:
    """Largest N, and the figures at N, 2N and recovery."""
    data = _load(f"capacity-{driver}")
    if data is None:
        return []
    rows = []
    for step in data["steps"]:
        rows.append(
            f"| {step['sessions']} sessions, `{driver}`: min fps / dropped / lips p95 / "
            f"server cores per session / MB per session | {step['min_fps']:.1f} / "
            f"{100 * step['drop_share']:.2f} % / {_ms(step['latency_p95_ms_worst'])} / "
            f"{step['server_cores_per_session']:.2f} / {step['server_rss_mb_per_session']:.0f} | "
            f"`{data['command']}` |"
        )
    over, rec = data["overload"], data["recovery_single_session"]
    rows.append(
        f"| overload at {over['sessions']} sessions: min fps / dropped / lips p95 | "
        f"{over['min_fps']:.1f} / {100 * over['drop_share']:.1f} % / "
        f"{_ms(over['latency_p95_ms_worst'])} | same run |"
    )
    rows.append(
        f"| after overload, 1 session: fps / lips p95 | {rec['min_fps']:.1f} / "
        f"{_ms(rec['latency_p95_ms_worst'])} | same run |"
    )
    return rows


def soak_rows(driver: str) -> list[str]:
    """Memory, latency and A/V offset over a long session."""
    data = _load(f"soak-{driver}")
    if data is None:
        return []
    blocks = data["blocks"]
    p95 = [b["latency_ms"]["p95"] for b in blocks if b["latency_ms"]["p95"]]
    offsets = [b["av_offset_median_ms"] for b in blocks if b["av_offset_median_ms"] is not None]
    growth = data["rss_growth_after_first_minute"]
    return [
        f"| soak {data['minutes']:g} min, `{driver}`: lips p95 first → last block | "
        f"{_ms(p95[0])} → {_ms(p95[-1])} | `{data['command']}` |",
        f"| soak: A/V offset median per {len(offsets)} blocks, min … max | "
        f"{min(offsets):.1f} … {max(offsets):.1f} ms | same run |",
        f"| soak: server memory growth after the first minute | {100 * growth:+.1f} % | same run |",
    ] + _viewer_rows(blocks)


def _viewer_rows(blocks: list[dict]) -> list[str]:
    """The soak's WHEP viewer: A/V offset and fps where an OBS source would see them."""
    offsets = [b["viewer_av_offset_median_ms"] for b in blocks if "viewer_av_offset_median_ms" in b]
    offsets = [o for o in offsets if o is not None]
    if not offsets:
        return []
    fps = min(b["viewer_fps"] for b in blocks)
    return [
        f"| soak, at a WHEP viewer: A/V offset median per {len(offsets)} blocks, min … max / "
        f"lowest fps | {min(offsets):.1f} … {max(offsets):.1f} ms / {fps:.1f} | same run |"
    ]


def lipsync_rows(driver: str) -> list[str]:
    """Real speech: mouth vs loudness, face found, fps, frame size."""
    data = _load(f"lipsync-{driver}")
    if data is None:
        return []
    return [
        f"| real speech (LibriSpeech), `{driver}`: r(mouth, loudness) / lips lag / voice after "
        f"lips / face found / fps / size | {data['pearson_r_open_vs_loudness']:.2f} / "
        f"{_ms(data['lips_lag_ms_at_best_r'])} / {_ms(data['voice_after_lips_ms'])} / "
        f"{100 * data['face_found_rate']:.1f} % / {data['fps']:.1f} / {data['frame_size']} | "
        f"`{data['command']}` |"
    ]


def main() -> None:
    """Prints the table."""
    rows = ["| measure | result | command |", "|---|---|---|"]
    for driver in ("learned", "loudness"):
        rows += latency_rows(driver) + lipsync_rows(driver)
    rows += latency_rows("learned", sessions=4)
    for driver in ("learned", "loudness"):
        rows += capacity_rows(driver) + soak_rows(driver)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
