"""An htpasswd file of bcrypt entries, as the reference registry reads it (other hash
kinds are refused, as there), re-read when it changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

import bcrypt

log = logging.getLogger(__name__)
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def parse(text: str) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            log.warning("htpasswd line %d: no user:hash pair, ignored", number)
            continue
        if not hashed.startswith(_BCRYPT_PREFIXES):
            log.warning("htpasswd line %d: %s is not a bcrypt entry, ignored", number, user)
            continue
        entries[user] = hashed.encode()
    return entries


class Htpasswd:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, bytes] = {}
        # bcrypt costs ~0.1 s by design; a client sends its credentials with every
        # request, so a pair already verified against the current entry is remembered.
        self._verified: set[tuple[str, bytes, bytes]] = set()
        self._load()

    def _load(self) -> None:
        st = os.stat(self.path)
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        self._entries = parse(self.path.read_text())
        self._verified.clear()
        self._stamp = stamp

    def verify(self, user: str, password: str) -> bool:
        """Blocks (bcrypt): call it from an executor."""
        with self._lock:
            try:
                self._load()
            except OSError as exc:
                log.error("cannot read htpasswd file %s: %s", self.path, exc)
                return False
            hashed = self._entries.get(user)
        if hashed is None:
            return False
        key = (user, hashed, hashlib.sha256(password.encode()).digest())
        if key in self._verified:
            return True
        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        with self._lock:
            self._verified.add(key)
        return True
