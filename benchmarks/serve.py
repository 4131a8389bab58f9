"""Load check of `sfhformer serve`: N clients on 127.0.0.1 for a bounded time.

    python benchmarks/serve.py --clients 8 --seconds 60 --size 128 --json benchmarks/results/serve_cpu.json

Starts the real server (a subprocess, CPU, its default queue of 8), then each client loops:
upload a photograph (the bundled denoiser, whole image), poll until done, fetch the result;
on 503 it waits the Retry-After the server gives. Reports latency percentiles (upload to
result), completed and rejected requests, the server's peak memory (VmHWM), and every other
status seen: nothing may be lost, and no 5xx but 503.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo_png(size: int) -> bytes:
    from PIL import Image
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        img = np.asarray(Image.open(f).convert("RGB"))[:size, :size]
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, format="PNG")
    return buffer.getvalue()


def client(base: str, data: bytes, stop: float, out: dict, lock: threading.Lock) -> None:
    import httpx

    with httpx.Client(base_url=base, timeout=600) as http:
        while time.time() < stop:
            t0 = time.time()
            r = http.post("/api/restore", files={"image": ("p.png", data, "image/png")},
                          data={"model": "denoise", "tile": "0"})
            with lock:
                out["status"][r.status_code] += 1
            if r.status_code == 503:
                time.sleep(float(r.headers.get("retry-after", "1")) / 5)  # try again soon, as a busy page would
                continue
            if r.status_code != 202:
                continue
            job = r.json()["id"]
            while True:
                state = http.get(f"/api/jobs/{job}").json()
                if state["state"] in ("done", "error"):
                    break
                time.sleep(0.05)
            result = http.get(f"/api/jobs/{job}/result") if state["state"] == "done" else None
            with lock:
                out["jobs"][state["state"]] += 1
                if result is not None and result.status_code == 200:
                    out["latency"].append(time.time() - t0)
                else:
                    out["lost"] += 1


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--size", type=int, default=128, help="side of the square photograph uploaded")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sfhformer", "serve", "--port", str(port), "--device", "cpu"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx
        deadline = time.time() + 120
        while True:
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the server did not start (exit {server.poll()})")
            try:
                if httpx.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        data = photo_png(args.size)
        out = {"status": Counter(), "jobs": Counter(), "latency": [], "lost": 0}
        lock = threading.Lock()
        stop = time.time() + args.seconds
        threads = [threading.Thread(target=client, args=(base, data, stop, out, lock)) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        status = Path(f"/proc/{server.pid}/status")
        peak = next((int(line.split()[1]) / 1024 for line in status.read_text().splitlines()
                     if line.startswith("VmHWM")), None) if status.exists() else None
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = np.array(out["latency"]) if out["latency"] else np.array([np.nan])
    result = {"clients": args.clients, "seconds": args.seconds, "size": args.size,
              "completed": len(out["latency"]), "rejected_503": out["status"][503],
              "statuses": {str(k): v for k, v in sorted(out["status"].items())},
              "jobs": dict(out["jobs"]), "lost": out["lost"],
              "latency_s": {p: float(np.percentile(lat, q)) for p, q in (("p50", 50), ("p90", 90), ("p99", 99))},
              "server_peak_rss_mb": peak}
    other_5xx = [k for k in out["status"] if k >= 500 and k != 503]
    print(f"{args.clients} clients, {args.seconds:g} s, {args.size}x{args.size} photographs: "
          f"{result['completed']} restored, {result['rejected_503']} turned away (503), {result['lost']} lost; "
          f"latency p50 {result['latency_s']['p50']:.2f} s, p90 {result['latency_s']['p90']:.2f} s, "
          f"p99 {result['latency_s']['p99']:.2f} s; server peak {peak or float('nan'):.0f} MB; "
          f"statuses {result['statuses']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if other_5xx or out["lost"]:
        raise SystemExit(f"failures: statuses {other_5xx}, lost {out['lost']}")
    return result


if __name__ == "__main__":
    main()
