"""Running `mailevents serve` in its own process, and reading its memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`mailevents serve` on a free loopback port, for as long as the `with` lasts."""

    def __init__(
        self,
        database: Path | str,
        *,
        http: bool = False,
        metrics: bool = False,
        log: Path | None = None,
    ) -> None:
        """`log`: where the server's log goes (its stderr), instead of this process's."""
        self.port = free_port()
        self.http_port = free_port() if http else 0
        #: With `metrics`, /metrics is served (and everything counted) on this port.
        self.metrics_port = free_port() if metrics else 0
        self.address = f"127.0.0.1:{self.port}"
        self._args = [
            str(Path(sys.executable).parent / "mailevents"),
            "serve",
            "--grpc-address",
            self.address,
            "--database",
            str(database),
            "--http-address",
            f"127.0.0.1:{self.http_port}" if http else "",
            "--metrics-address",
            f"127.0.0.1:{self.metrics_port}" if metrics else "",
            "--log-level",
            "warning",
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = log

    def __enter__(self) -> ServerProcess:
        stderr = self._log.open("ab") if self._log is not None else None
        try:
            self.proc = subprocess.Popen(self._args, stderr=stderr)
        finally:
            if stderr is not None:
                stderr.close()
        deadline = time.monotonic() + 30
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        return self
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("server did not start")
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def memory_kib(self) -> dict[str, int]:
        """The server's memory now, in KiB: VmRSS, RssAnon (heap: what a result could
        grow) and RssFile (pages of the database file mapped by SQLite's mmap)."""
        assert self.proc is not None
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile"):
                out[name] = int(value.split()[0])
        return out


class MemorySampler:
    """Samples a process's memory every few milliseconds; keeps the peaks."""

    def __init__(self, server: ServerProcess, every: float = 0.01) -> None:
        self._server = server
        self._every = every
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, kib in self._server.memory_kib().items():
                self.peak[name] = max(kib, self.peak.get(name, 0))
            self._stop.wait(self._every)


def cpu_count() -> int:
    return os.cpu_count() or 1
