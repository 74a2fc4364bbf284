"""A named volume as essaim models it: its name, driver, labels and driver options.

Pure data; where it lives on disk and who uses it are the volume service's business.
"""

from __future__ import annotations

import msgspec

LOCAL_DRIVER = "local"
# Set on volumes created without a name; `volume prune` (API >= 1.42) only takes these.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


class Volume(msgspec.Struct, kw_only=True):
    name: str
    driver: str = LOCAL_DRIVER
    created_at: str = ""  # RFC 3339, seconds, the daemon's local zone (as dockerd)
    labels: dict[str, str] = {}
    # The local driver's `type`/`device`/`o`: a filesystem mounted on the volume's
    # directory while a container uses it.
    options: dict[str, str] = {}

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels
