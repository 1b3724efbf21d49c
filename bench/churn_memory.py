"""Memory after a churn of WHIP sessions (issue 12: within 10 % of its level after the first).

Opens N sessions one after another against a running server (each connects, sends 1 s of silence
and hangs up) and prints the RSS of the server's processes (the pid and its children, read from
/proc) after the first session, every 50 sessions, and at the end.

usage: python bench/churn_memory.py BASE_URL TOKEN|- N SERVER_PID
"""

import argparse
import asyncio
import subprocess
from pathlib import Path

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack


def process_tree(root_pid: int) -> list[int]:
    """The server's pid and its direct children (the front and its workers)."""
    children = subprocess.run(
        ["pgrep", "-P", str(root_pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [root_pid, *map(int, children)]


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_rss(root_pid: int) -> tuple[float, dict[int, int]]:
    """Total RSS of the tree in MB, and each process's share."""
    per = {pid: rss_mb(pid) for pid in process_tree(root_pid)}
    return sum(per.values()), {pid: round(mb) for pid, mb in per.items()}


async def one_session(http: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> None:
    """Publish one WHIP session for a second of silence, then DELETE it."""
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendrecv")
    pc.addTransceiver("video", direction="recvonly")
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def _state() -> None:
        if pc.connectionState == "connected":
            connected.set()

    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(base + "/whip", data=pc.localDescription.sdp, headers=headers) as r:
        assert r.status == 201, (r.status, await r.text())
        answer, location = await r.text(), r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await asyncio.wait_for(connected.wait(), 15)
    await asyncio.sleep(1.0)
    async with http.delete(base + location, headers=headers):
        pass
    await pc.close()


async def churn(base: str, token: str, sessions: int, server_pid: int) -> None:
    """Run the churn and print the memory figures."""
    headers = {"Content-Type": "application/sdp"}
    if token != "-":
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http:
        await one_session(http, base, headers)
        await asyncio.sleep(2)
        first, per = tree_rss(server_pid)
        print(f"after first session: {first:.0f} MB {per}", flush=True)
        for i in range(sessions):
            await one_session(http, base, headers)
            if (i + 1) % 50 == 0:
                total, per = tree_rss(server_pid)
                print(f"after {i + 1}: {total:.0f} MB {per}", flush=True)
        await asyncio.sleep(5)
        last, per = tree_rss(server_pid)
        growth = 100 * (last - first) / first
        print(f"after churn of {sessions}: {last:.0f} MB ({growth:+.1f} %) {per}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("token", help="the server's --token, or - for none")
    parser.add_argument("sessions", type=int)
    parser.add_argument("server_pid", type=int)
    args = parser.parse_args()
    asyncio.run(churn(args.base_url.rstrip("/"), args.token, args.sessions, args.server_pid))


if __name__ == "__main__":
    main()
