"""Apply the firewall's desired state through libnftables: one transaction per change,
one change at a time, and nothing done when the rules would not change."""

from __future__ import annotations

import asyncio

from essaim.errors import SystemError_
from essaim.network.firewall.libnft import run_script
from essaim.network.firewall.model import FirewallState
from essaim.network.firewall.rules import check_table_name, render, render_additions


async def run_nft(script: str, *, check: bool = False) -> None:
    """`script` as one nftables transaction (`check`: parse and validate only); nft's own
    message on failure. If we are cancelled, the transaction is still waited for: the
    kernel takes its batch whole or not at all, and leaving early would only hide which,
    or let the next run overtake it."""
    work = asyncio.ensure_future(asyncio.to_thread(run_script, script, check=check))
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise


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
