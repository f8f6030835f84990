"""A small client for a sharegrid node's HTTP API, in Python's standard
library alone (nothing to install): submit jobs, follow them, download
their results, read the ledger and move tokens.

Each method is one operation of the node's OpenAPI document
(``docs/openapi.json``, served at ``/api/openapi.json``); ``OPERATIONS``
lists them, and the project's tests check that it names every operation of
the document and nothing else.

    from sharegrid_client import Client
    node = Client()                      # the node of ~/.sharegrid (or $SHAREGRID_HOME)
    job = node.submit(JOB_TOML, {"m.wasm": "path/to/m.wasm"})
    node.wait(job)                       # follows the node's live events
    for task in node.job(job)["tasks"]:
        print(node.stdout(job, task["index"]))
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

# method name -> (HTTP method, path) for every operation of the document.
OPERATIONS = {
    "status": ("GET", "/api/status"),
    "offers": ("GET", "/api/offers"),
    "peers": ("GET", "/api/peers"),
    "providers": ("GET", "/api/providers"),
    "jobs": ("GET", "/api/jobs"),
    "submit_request": ("POST", "/api/jobs"),
    "job": ("GET", "/api/jobs/{id}"),
    "cancel": ("POST", "/api/jobs/{id}/cancel"),
    "task": ("GET", "/api/jobs/{id}/tasks/{index}"),
    "stdout": ("GET", "/api/jobs/{id}/tasks/{index}/stdout"),
    "stderr": ("GET", "/api/jobs/{id}/tasks/{index}/stderr"),
    "file": ("GET", "/api/jobs/{id}/tasks/{index}/files/{path}"),
    "run": ("POST", "/api/run"),
    "stop": ("POST", "/api/stop"),
    "upload": ("POST", "/api/blobs"),
    "blob": ("GET", "/api/blobs/{id}"),
    "ledger": ("GET", "/api/ledger"),
    "blocks": ("GET", "/api/ledger/blocks"),
    "tx": ("GET", "/api/ledger/txs/{id}"),
    "account": ("GET", "/api/ledger/accounts/{id}"),
    "wallet": ("GET", "/api/wallet"),
    "transfer": ("POST", "/api/wallet/transfer"),
    "stake": ("POST", "/api/wallet/stake"),
    "faucet": ("POST", "/api/wallet/faucet"),
    "events": ("GET", "/api/events"),
    "metrics": ("GET", "/metrics"),
    "openapi": ("GET", "/api/openapi.json"),
}


class ApiError(Exception):
    """The node refused a request: ``status`` is the HTTP status, the
    message the node's reason."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _home() -> Path:
    return Path(os.environ.get("SHAREGRID_HOME") or Path.home() / ".sharegrid")


class Client:
    """A connection to one node. With no arguments, the node whose home is
    ``$SHAREGRID_HOME`` or ``~/.sharegrid``: its address from ``api.addr``,
    its token from ``api.token``."""

    def __init__(self, url: str | None = None, token: str | None = None, home: str | Path | None = None,
                 timeout: float = 120.0):
        home = Path(home) if home else _home()
        if url is None:
            url = (home / "api.addr").read_text().strip()
        if token is None:
            token = (home / "api.token").read_text().strip()
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # --- the transport ---------------------------------------------------

    def _open(self, method: str, path: str, body: bytes | None = None, kind: str | None = None,
              query: dict[str, Any] | None = None, timeout: float | None = None):
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        req = urllib.request.Request(url, data=body, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if kind:
            req.add_header("Content-Type", kind)
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                why = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                why = raw.decode("utf-8", "replace") or e.reason
            raise ApiError(e.code, why) from None

    def _json(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        with self._open(method, path, data, "application/json" if data is not None else None, query) as r:
            return json.load(r)

    def _bytes(self, path: str) -> bytes:
        with self._open("GET", path) as r:
            return r.read()

    @staticmethod
    def _q(part: Any) -> str:
        return urllib.parse.quote(str(part), safe="")

    # --- the node ------------------------------------------------------------

    def status(self) -> dict:
        """The node now: id, peers, offers, provider and ledger state."""
        return self._json("GET", "/api/status")

    def offers(self) -> list[dict]:
        """Providers' live offers."""
        return self._json("GET", "/api/offers")

    def peers(self) -> list[dict]:
        """The connected peers."""
        return self._json("GET", "/api/peers")

    def providers(self) -> list[dict]:
        """Providers with live offers: their stake on the ledger and this node's record of their work."""
        return self._json("GET", "/api/providers")

    def metrics(self) -> str:
        """Prometheus metrics, as text."""
        return self._bytes("/metrics").decode()

    def stop(self) -> str:
        """Stops the node, as Ctrl-C does (running tasks get the grace period)."""
        return self._json("POST", "/api/stop")

    def openapi(self) -> dict:
        """The API's OpenAPI document."""
        return self._json("GET", "/api/openapi.json")

    def events(self) -> Iterator[dict]:
        """The node's live events (server-sent), each a dict with a ``type``:
        task, waiting, ended, block, offer. Blocks until the next one."""
        with self._open("GET", "/api/events", timeout=3600) as r:
            data = []
            for raw in r:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []

    # --- jobs ------------------------------------------------------------------

    def jobs(self) -> list[dict]:
        """Every job this node submitted, newest first."""
        return self._json("GET", "/api/jobs")

    def upload(self, data: bytes) -> str:
        """Stores bytes in the node's blob store: → their id."""
        with self._open("POST", "/api/blobs", data, "application/octet-stream") as r:
            return json.load(r)["id"]

    def submit_request(self, job: str, files: dict[str, str]) -> str:
        """Submits a job file's text whose paths name uploaded blobs: → the job's id."""
        return self._json("POST", "/api/jobs", {"job": job, "files": files})["id"]

    def submit(self, job: str, files: dict[str, str | bytes | Path] | None = None) -> str:
        """Submits a job file's text (the format ``sharegrid submit`` reads),
        uploading each file it names first: ``files`` maps each path the job
        file names to a local file or to bytes. → the job's id."""
        ids = {}
        for name, f in (files or {}).items():
            data = f if isinstance(f, bytes) else Path(f).read_bytes()
            ids[name] = self.upload(data)
        return self.submit_request(job, ids)

    def job(self, id: str) -> dict:
        """A job (id or unique prefix): its row, live state, tasks and payment."""
        return self._json("GET", f"/api/jobs/{self._q(id)}")

    def cancel(self, id: str) -> str:
        """Cancels a running job: nothing more is assigned, accepted results
        are kept and paid, the rest of the escrow refunded. → its id."""
        return self._json("POST", f"/api/jobs/{self._q(id)}/cancel")["id"]

    def wait(self, id: str, timeout: float = 600.0) -> dict:
        """Waits until the job ends, following the node's events (and
        looking again every few seconds): → its final view. Raises
        ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.job(id)
            if view["job"]["state"] in ("done", "failed"):
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {id} is still {view['job']['state']} after {timeout} s")
            try:
                with self._open("GET", "/api/events", timeout=5) as r:
                    for raw in r:
                        line = raw.decode()
                        if line.startswith("data:") and '"ended"' in line and id in line:
                            break
            except (TimeoutError, OSError):
                pass

    def run(self, provider: str, task: str, module: str, args: list[str] | None = None, stdin: str | None = None,
            limits: dict | None = None, mode: str = "native", price: str | None = None) -> dict:
        """Runs one task on the chosen provider, outside any job and escrow
        (blobs uploaded first): → the provider's receipt and the id of the
        result's blob."""
        body = {"provider": provider, "task": task, "args": args or [], "module": module,
                "stdin": stdin or self.upload(b""), "inputs": [], "limits": limits or {}, "mode": mode,
                "price": price}
        return self._json("POST", "/api/run", body)

    def task(self, id: str, index: int) -> dict:
        """How task ``index`` of a job ended, and the files it left."""
        return self._json("GET", f"/api/jobs/{self._q(id)}/tasks/{int(index)}")

    def stdout(self, id: str, index: int) -> bytes:
        """What an accepted task wrote to stdout."""
        return self._bytes(f"/api/jobs/{self._q(id)}/tasks/{int(index)}/stdout")

    def stderr(self, id: str, index: int) -> bytes:
        """What an accepted task wrote to stderr."""
        return self._bytes(f"/api/jobs/{self._q(id)}/tasks/{int(index)}/stderr")

    def file(self, id: str, index: int, path: str) -> bytes:
        """A file an accepted task left in /out."""
        return self._bytes(f"/api/jobs/{self._q(id)}/tasks/{int(index)}/files/{self._q(path)}")

    def blob(self, id: str) -> bytes:
        """A blob of the node's store."""
        return self._bytes(f"/api/blobs/{self._q(id)}")

    # --- the ledger and the wallet ---------------------------------------------------

    def ledger(self) -> dict:
        """Where this node's copy of the ledger stands."""
        return self._json("GET", "/api/ledger")

    def blocks(self, before: int | None = None, limit: int | None = None) -> list[dict]:
        """Blocks, newest first."""
        return self._json("GET", "/api/ledger/blocks", query={"before": before, "limit": limit})

    def tx(self, id: str) -> dict:
        """A transaction in a block."""
        return self._json("GET", f"/api/ledger/txs/{self._q(id)}")

    def account(self, id: str, history: int | None = None) -> dict:
        """An account: balance, stake, history."""
        return self._json("GET", f"/api/ledger/accounts/{self._q(id)}", query={"history": history})

    def wallet(self, history: int | None = None) -> dict:
        """This node's account."""
        return self._json("GET", "/api/wallet", query={"history": history})

    def transfer(self, to: str, amount: int | str, wait: bool = False) -> dict:
        """Sends tokens from this node's account: → the transaction (and its block, when waited for)."""
        return self._json("POST", "/api/wallet/transfer", {"to": to, "amount": str(amount), "wait": wait})

    def stake(self, action: str, amount: int | str | None = None) -> dict:
        """``bond``, ``unbond`` (with an amount) or ``withdraw`` stake, waited for in a block."""
        body: Any = action if amount is None else {action: str(amount)}
        return self._json("POST", "/api/wallet/stake", body)

    def faucet(self) -> dict:
        """Test tokens from the network's faucet, waited for in a block."""
        return self._json("POST", "/api/wallet/faucet")
