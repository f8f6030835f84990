"""Submits a job to a sharegrid node and waits for its results: a Mandelbrot
image in four tiles, each computed by two providers that must agree. Writes
each tile into OUT and prints what it did as one JSON line.

    python3 example.py --module guests/wasm/mandelbrot.wasm --out tiles/
    python3 example.py --url http://127.0.0.1:7410 --token TOKEN ...
"""

import argparse
import json
import sys
import time
from pathlib import Path

from sharegrid_client import ApiError, Client

JOB = """
[job]
name = "python-client-mandelbrot"
module = "mandelbrot.wasm"
args = ["{col}", "{row}", "2", "2", "128", "96", "128"]
replication = 2
quorum = 2
budget = "100000000"

[job.limits]
fuel = "2G"

[job.sweep]
col = ["0", "1"]
row = ["0", "1"]
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="the node's API address (default: its home's api.addr)")
    p.add_argument("--token", help="the node's API token (default: its home's api.token)")
    p.add_argument("--home", help="the node home (default: $SHAREGRID_HOME or ~/.sharegrid)")
    p.add_argument("--module", required=True, help="the Mandelbrot guest (guests/wasm/mandelbrot.wasm)")
    p.add_argument("--out", default="tiles", help="where to write the tiles")
    a = p.parse_args()

    node = Client(a.url, a.token, a.home)
    started = time.monotonic()
    try:
        job = node.submit(JOB, {"mandelbrot.wasm": a.module})
        view = node.wait(job, timeout=300)
    except ApiError as e:
        print(f"the node refused: {e}", file=sys.stderr)
        return 1
    if view["job"]["state"] != "done":
        print(f"job {job} {view['job']['state']}: {view['job'].get('reason')}", file=sys.stderr)
        return 1
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for t in view["tasks"]:
        for f in node.task(job, t["index"])["files"]:
            data = node.file(job, t["index"], f["path"])
            (out / f["path"]).write_bytes(data)
            written.append({"task": t["index"], "path": f["path"], "bytes": len(data)})
    print(json.dumps({
        "job": job,
        "state": view["job"]["state"],
        "tasks": len(view["tasks"]),
        "files": written,
        "seconds": round(time.monotonic() - started, 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
