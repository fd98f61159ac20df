"""Running `mailevents serve` in its own process, and reading its memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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

    def __init__(self, database: Path | str, *, http: bool = False) -> None:
        self.port = free_port()
        self.http_port = free_port() if http else 0
        self.address = f"127.0.0.1:{self.port}"
        self._args = [
            sys.executable,
            "-m",
            "mailevents.cli",
            "serve",
            "--grpc-address",
            self.address,
            "--database",
            str(database),
            "--http-address",
            f"127.0.0.1:{self.http_port}" if http else "",
            "--log-level",
            "warning",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(self._args)
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

    def memory_kib(self) -> tuple[int, int]:
        """(current RSS, peak RSS) of the server process, in KiB."""
        assert self.proc is not None
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def reset_peak(self) -> None:
        """Make VmHWM start again from the current RSS (Linux >= 4.0)."""
        assert self.proc is not None
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        except OSError:
            pass


def cpu_count() -> int:
    return os.cpu_count() or 1
