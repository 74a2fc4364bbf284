"""Apply the firewall's desired state with the `nft` binary: one transaction per change,
one change at a time, and nothing done when the rules would not change."""

from __future__ import annotations

import asyncio

from essaim.errors import SystemError_
from essaim.network.firewall.model import FirewallState
from essaim.network.firewall.rules import check_table_name, render

NFT = "nft"


async def run_nft(script: str, *, check: bool = False) -> None:
    """`nft -f -` fed `script` (`-c`: parse and validate only); nft's own message on
    failure. If we are cancelled, nft is still waited for: the kernel takes its batch whole
    or not at all, and killing it would only hide which, or let the next run overtake it."""
    argv = [NFT, *(["-c"] if check else []), "-f", "-"]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise SystemError_(f"nftables: {NFT} not found: install nftables") from exc
    communicate = asyncio.ensure_future(proc.communicate(script.encode()))
    try:
        _, stderr = await asyncio.shield(communicate)
    except asyncio.CancelledError:
        await asyncio.wait([communicate])
        raise
    if proc.returncode != 0:
        message = stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise SystemError_(f"nftables: {message}")


class Firewall:
    """Our nftables tables (`ip` and `bridge` families, both named `table`). Applies are
    serialised in call order, so the state of the last call is what stays."""

    def __init__(self, table: str) -> None:
        check_table_name(table)
        self.table = table
        self._lock = asyncio.Lock()
        # The script the kernel holds, as far as we know; None: unknown (at start, or
        # after a failure we could not read), so the next apply runs whatever it is.
        self._applied: str | None = None

    async def apply(self, state: FirewallState) -> None:
        script = render(self.table, state)  # raises before anything changes
        async with self._lock:
            if script == self._applied:
                return
            await self._run(script)

    async def remove(self) -> None:
        """Our tables gone, whatever we believe is there."""
        async with self._lock:
            await self._run(render(self.table, FirewallState()))

    async def _run(self, script: str) -> None:
        try:
            await run_nft(script)
        except SystemError_:
            # nft's transaction was refused whole: the kernel still holds the old rules.
            raise
        except BaseException:
            self._applied = None
            raise
        self._applied = script
