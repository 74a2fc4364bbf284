"""nftables scripts run in-process through libnftables (what the `nft` binary itself
calls), in the calling thread's network namespace; a few milliseconds less than a process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from essaim.errors import SystemError_

_lock = threading.Lock()
_library: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _library
    with _lock:
        if _library is None:
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            try:
                lib = ctypes.CDLL(name, use_errno=True)
            except OSError as exc:
                raise SystemError_(f"nftables: {name}: {exc}: install nftables") from None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_set_dry_run.argtypes = [ctypes.c_void_p, ctypes.c_bool]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            _library = lib
        return _library


def run_script(script: str, *, check: bool = False) -> None:
    """Run `script` as one transaction (`check`: parse and validate only, as `nft -c`);
    nft's own message on failure. Blocking: call it off the event loop."""
    lib = _lib()
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise SystemError_("nftables: cannot make a context")
    try:
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        if check:
            lib.nft_ctx_set_dry_run(ctx, True)
        if lib.nft_run_cmd_from_buffer(ctx, script.encode()) != 0:
            message = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
            raise SystemError_(f"nftables: {message.strip() or 'the script was refused'}")
    finally:
        lib.nft_ctx_free(ctx)
