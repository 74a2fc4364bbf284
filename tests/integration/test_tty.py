"""`docker run --rm -it busybox sh` under a real pseudo-terminal: prompt, input,
window size following resizes, exit code; and detaching with ctrl-p ctrl-q.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

from tests.integration.daemon import EssaimDaemon


class Terminal:
    def __init__(self, daemon: EssaimDaemon, *args: str, rows: int = 30, cols: int = 100) -> None:
        self.master, slave = pty.openpty()
        self.set_size(rows, cols, slave)
        self.proc = subprocess.Popen(
            ["docker", *args], env=daemon.env(), stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )  # fmt: skip
        os.close(slave)
        self.buffer = b""

    def set_size(self, rows: int, cols: int, fd: int | None = None) -> None:
        fcntl.ioctl(self.master if fd is None else fd, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))  # fmt: skip

    def resize(self, rows: int, cols: int) -> None:
        self.set_size(rows, cols)
        self.proc.send_signal(signal.SIGWINCH)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, needle: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while needle.encode() not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{needle!r} not seen in {self.buffer[-500:]!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"EOF before {needle!r}: {self.buffer[-500:]!r}")
                self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(needle.encode())
        return head.decode(errors="replace")

    def wait(self, timeout: float = 15) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            os.close(self.master)


def test_interactive_shell_answers_resizes_and_exits_with_its_code(daemon: EssaimDaemon) -> None:
    term = Terminal(daemon, "run", "--rm", "-it", "busybox", "sh", rows=30, cols=100)
    term.expect("# ")
    term.send("echo $((6*7))\r")
    term.expect("42")
    term.expect("# ")
    term.send("stty size\r")
    term.expect("30 100")
    term.expect("# ")
    term.resize(40, 120)
    time.sleep(0.5)
    term.send("stty size\r")
    term.expect("40 120")
    term.expect("# ")
    term.send("exit 5\r")
    assert term.wait() == 5


def test_detach_keys_leave_the_container_running(daemon: EssaimDaemon) -> None:
    name = f"detach-{time.monotonic_ns()}"
    term = Terminal(daemon, "run", "-it", "--name", name, "busybox", "sh")
    try:
        term.expect("# ")
        term.send("\x10\x11")
        assert term.wait() == 0
        state = daemon.docker("inspect", "-f", "{{.State.Running}}", name)
        assert state.stdout.strip() == "true"
    finally:
        daemon.docker("rm", "-f", name)
