"""Memory after a churn of WHIP sessions (issue 12: within 10 % of its level after the first).

usage: python bench/churn_memory.py BASE_URL TOKEN|- N SERVER_PID
Opens N sessions one after another (each connects, sends 1 s of silence and hangs up) and prints
the RSS of the server's processes (the pid and its children, from /proc) after the first session,
every 50, and at the end.
"""
import asyncio, subprocess, sys, time
import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

BASE, TOKEN, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
H = {"Content-Type": "application/sdp"} | ({"Authorization": f"Bearer {TOKEN}"} if TOKEN != "-" else {})

PER = {}
def rss_mb(root_pid: int) -> float:
    pids = [root_pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(root_pid)], capture_output=True, text=True).stdout.split()]
    total = 0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]); PER[pid] = int(line.split()[1]) // 1024
    return total / 1024

async def one(http):
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendrecv")
    pc.addTransceiver("video", direction="recvonly")
    connected = asyncio.Event()
    pc.on("connectionstatechange", lambda: connected.set() if pc.connectionState == "connected" else None)
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(BASE + "/whip", data=pc.localDescription.sdp, headers=H) as r:
        assert r.status == 201, (r.status, await r.text())
        answer, loc = await r.text(), r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await asyncio.wait_for(connected.wait(), 15)
    await asyncio.sleep(1.0)
    async with http.delete(BASE + loc, headers=H):
        pass
    await pc.close()

async def main():
    root = int(sys.argv[4])
    async with aiohttp.ClientSession() as http:
        await one(http)
        await asyncio.sleep(2)
        first = rss_mb(root)
        print(f"after first session: {first:.0f} MB {PER}", flush=True)
        for i in range(N):
            await one(http)
            if (i + 1) % 50 == 0:
                print(f"after {i + 1}: {rss_mb(root):.0f} MB {PER}", flush=True)
        await asyncio.sleep(5)
        last = rss_mb(root)
        print(f"after churn of {N}: {last:.0f} MB ({100 * (last - first) / first:+.1f} %) {PER}", flush=True)

asyncio.run(main())
