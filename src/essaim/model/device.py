"""A host device a container is given (`--device`, `HostConfig.Devices`): the node on
the host, where the container sees it, and the cgroup access it gets (r, w, m).
"""

from __future__ import annotations

import msgspec


class DeviceMapping(msgspec.Struct, frozen=True):
    path_on_host: str
    path_in_container: str
    cgroup_permissions: str = "rwm"
