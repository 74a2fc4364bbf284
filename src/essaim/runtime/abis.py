"""Which compat syscall ABIs the running kernel serves, so seccomp filters skip dead ones.

runc compiles every container's filter once per listed ABI (about 6 ms each here), and a
filter for an ABI the kernel cannot run guards nothing: its syscalls fail with ENOSYS.
"""

import ctypes
import errno
import os
from pathlib import Path

# x32 syscalls are x86_64 numbers with this bit set; getpid is 39 on x86_64.
_X32_SYSCALL_BIT = 0x40000000
_SYS_GETPID_X86_64 = 39


def missing_compat_abis(machine: str, status: Path = Path("/proc/self/status")) -> frozenset[str]:
    """libseccomp names of this machine's compat ABIs that the kernel does not run."""
    if machine != "x86_64" or _under_seccomp(status):
        # Under a filter of its own, probing could get this process killed for a bad
        # arch; keeping the ABI in container filters is then the safe answer.
        return frozenset()
    return frozenset() if _kernel_runs_x32() else frozenset({"SCMP_ARCH_X32"})


def _under_seccomp(status: Path) -> bool:
    try:
        for line in status.read_text().splitlines():
            if line.startswith("Seccomp:"):
                return line.split()[1] != "0"
    except (OSError, IndexError):
        pass
    return True


def _kernel_runs_x32() -> bool:
    """A kernel built without CONFIG_X86_X32_ABI (or booted without it) answers ENOSYS."""
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall(ctypes.c_long(_X32_SYSCALL_BIT | _SYS_GETPID_X86_64))
    if result == os.getpid():
        return True
    return ctypes.get_errno() != errno.ENOSYS
