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
    return "–" if value is None else f"{round(value)} ms"  # round: no "-0 ms"


def latency_rows(driver: str, sessions: int = 1) -> list[str]:
    """Glass-to-glass, its stages and the A/V offset; the worst session when there are several."""
    data = _load(f"latency-{driver}-{sessions}s")
    if data is None:
        return []
    s = max(data["per_session"], key=lambda r: r["latency_ms"]["p95"] or 0.0)
    lat, av = s["latency_ms"], s["av_offset_ms"]
    runs = data.get("runs", 1)
    who = f"`{driver}`" + (f", worst of {sessions} sessions at once" if sessions > 1 else "")
    who += f", worst of {runs} runs" if runs > 1 else ""
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
    if runs > 1:
        every = data["every_run"]
        p95 = ", ".join(f"{min(r['p95_ms']):.0f}–{max(r['p95_ms']):.0f}" for r in every)
        fps = min(r["min_fps"] for r in every)
        rows.append(
            f"| every run: lips p95 of its sessions, ms / lowest fps of all runs | {p95} / "
            f"{fps:.1f} | same command |"
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


STAGE_NAMES = {
    "opus_decode": "Opus decode (2 packets)",
    "resample": "resample to 16 kHz",
    "features": "log-mel features",
    "phoneme_encoder": "phoneme encoder (onnxruntime)",
    "motion_model": "motion model (onnxruntime)",
    "pipeline_rest": "VAD, mouth gate, idle motion, driver bookkeeping",
    "generator": "generator (onnxruntime)",
    "compose": "compose the yuv420p frame",
    "vp8_encode": "VP8 encode",
    "opus_encode": "Opus encode of the returned voice",
    "srtp_protect": "SRTP protect",
    "total": "**total**",
}


def stage_cost_rows() -> list[str]:
    """CPU µs per frame of each server stage, one thread."""
    data = _load("stage_cost")
    if data is None:
        return []
    rows = ["| stage | mean µs per frame | p95 µs |", "|---|---|---|"]
    for key, cost in data["stages_us_per_frame"].items():
        rows.append(
            f"| {STAGE_NAMES.get(key, key)} | {cost['mean_us']:.0f} | {cost['p95_us']:.0f} |"
        )
    return rows


def hot_path_rows() -> list[str]:
    """What each worker's GIL is busy with while live sessions run."""
    data = _load("hot_path")
    if data is None:
        return []
    busy = " / ".join(f"{100 * v:.0f} %" for v in data["gil_busy_by_process"].values())
    rows = [
        "| live server, GIL held by | seconds per second |",
        "|---|---|",
        f"| each worker's GIL busy (all stages) | {busy} |",
    ]
    for stage, share in data["gil_s_per_s_by_stage"].items():
        rows.append(f"| {stage} | {share:.3f} |")
    return rows


def main() -> None:
    """Prints the tables."""
    rows = ["| measure | result | command |", "|---|---|---|"]
    for driver in ("learned", "loudness"):
        rows += latency_rows(driver) + lipsync_rows(driver)
    rows += latency_rows("learned", sessions=4)
    for driver in ("learned", "loudness"):
        rows += capacity_rows(driver) + soak_rows(driver)
    print("\n".join(rows))
    for table in (stage_cost_rows(), hot_path_rows()):
        print("\n" + "\n".join(table))


if __name__ == "__main__":
    main()
