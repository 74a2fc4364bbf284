"""Apply the firewall's desired state with the `nft` binary: one transaction per change,
one change at a time, and nothing done when the rules would not change."""

from __future__ import annotations

import asyncio

from essaim.errors import SystemError_
from essaim.network.firewall.model import FirewallState
from essaim.network.firewall.rules import check_table_name, render, render_additions

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
        # What the kernel holds, as far as we know (the state and its full script); None:
        # unknown (at start, or after an apply we could not see end), so the next apply
        # replaces whatever is there.
        self._applied: tuple[FirewallState, str] | None = None

    async def apply(self, state: FirewallState) -> None:
        script = render(self.table, state)  # raises before anything changes
        async with self._lock:
            if self._applied is None:
                await self._run(state, script, script)
                return
            old_state, old_script = self._applied
            if script == old_script:
                return
            additions = render_additions(self.table, old_state, state)
            await self._run(state, script, script if additions is None else additions)

    async def remove(self) -> None:
        """Our tables gone, whatever we believe is there."""
        async with self._lock:
            empty = FirewallState()
            script = render(self.table, empty)
            await self._run(empty, script, script)

    async def _run(self, state: FirewallState, script: str, change: str) -> None:
        """Run `change`, which takes the kernel to `script` (the same, or its additions)."""
        try:
            if change:
                await run_nft(change)
        except SystemError_:
            # nft's transaction was refused whole: the kernel still holds the old rules.
            raise
        except BaseException:
            self._applied = None
            raise
        self._applied = (state, script)
