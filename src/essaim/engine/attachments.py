"""Attach clients and the containers they attach to: a session waits for a container
that is not running yet, and is handed to the runtime's attach socket once it starts.
"""

from __future__ import annotations

from essaim.engine.attach import AttachSession
from essaim.engine.tasks import BackgroundTasks
from essaim.runtime.base import OCIRuntime


class Attachments:
    def __init__(self, tasks: BackgroundTasks) -> None:
        self._tasks = tasks
        self._waiting: dict[str, list[AttachSession]] = {}

    def connect(self, cid: str, runtime: OCIRuntime, session: AttachSession) -> None:
        """Relay `session` to the running container; without its stdio (it exited
        meanwhile), the session ends."""
        try:
            sock = runtime.open_attach(cid)
        except OSError:
            session.done.set()
            return
        self._tasks.spawn(session.run(sock), f"attach-{cid}")

    def wait_for_start(self, cid: str, session: AttachSession) -> None:
        self._waiting.setdefault(cid, []).append(session)

    def connect_waiting(self, cid: str, runtime: OCIRuntime) -> None:
        """The container is created: its output from the first byte goes to them."""
        for session in self._waiting.pop(cid, []):
            self.connect(cid, runtime, session)

    def end_waiting(self, cid: str) -> None:
        """The container could not start: nothing will come."""
        for session in self._waiting.pop(cid, []):
            session.done.set()
