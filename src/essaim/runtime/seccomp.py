"""Docker's default seccomp profile, and the resolution of a Docker-format profile for runc.

Docker-format profiles carry conditions (capabilities, architectures, kernel version); the
OCI runtime wants them resolved for one container on one host, which `resolve_profile` does.
"""

import json
from collections.abc import Collection, Mapping
from typing import NamedTuple

from essaim.errors import InvalidParameter

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"
EPERM = 1
ENOSYS = 38
AF_VSOCK = 40

# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
# | CLONE_NEWNET: without CAP_SYS_ADMIN, clone may not ask for any new namespace.
CLONE_NAMESPACE_FLAGS = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)

# personality(2) values a container may set: the default, UNAME26, ADDR_NO_RANDOMIZE and
# their combination, and 0xffffffff, which only queries the current persona.
ALLOWED_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# Syscalls every container may make, whatever its capabilities. Grouped by family; the
# 32-bit and time64 variants exist so that 32-bit programs work on 64-bit hosts.
_BASE_SYSCALLS = """
    accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom
    recvmmsg recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown
    socketcall socketpair

    access faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat chown chown32
    fchown fchown32 fchownat lchown lchown32 creat open openat openat2 close close_range
    dup dup2 dup3 fcntl fcntl64 flock link linkat symlink symlinkat unlink unlinkat rename
    renameat renameat2 mkdir mkdirat mknod mknodat rmdir readlink readlinkat truncate
    truncate64 ftruncate ftruncate64 fallocate name_to_handle_at umask

    stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64
    fstatfs fstatfs64 getdents getdents64 utime utimes utimensat utimensat_time64 futimesat

    read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2 lseek _llseek
    sendfile sendfile64 splice tee vmsplice copy_file_range readahead fadvise64
    fadvise64_64 fsync fdatasync sync syncfs sync_file_range

    getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr setxattr lsetxattr
    fsetxattr removexattr lremovexattr fremovexattr

    epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
    epoll_wait_old eventfd eventfd2 poll ppoll ppoll_time64 select _newselect pselect6
    pselect6_time64 inotify_init inotify_init1 inotify_add_watch inotify_rm_watch
    fanotify_mark signalfd signalfd4 timerfd_create timerfd_gettime timerfd_gettime64
    timerfd_settime timerfd_settime64 pipe pipe2 memfd_create memfd_secret

    io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
    io_uring_setup io_uring_enter io_uring_register ioctl ioprio_get ioprio_set

    brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall
    munlock munlockall remap_file_pages membarrier pkey_alloc pkey_free pkey_mprotect

    execve execveat exit exit_group fork vfork wait4 waitid waitpid kill tkill tgkill
    pidfd_open pidfd_send_signal process_mrelease getpid getppid gettid getpgid setpgid
    getpgrp getsid setsid restart_syscall rseq set_tid_address set_robust_list
    get_robust_list set_thread_area get_thread_area prctl capget capset seccomp
    landlock_create_ruleset landlock_add_rule landlock_restrict_self

    getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid
    getresuid32 getresgid getresgid32 getgroups getgroups32 setuid setuid32 setgid
    setgid32 setreuid setreuid32 setregid setregid32 setresuid setresuid32 setresgid
    setresgid32 setfsuid setfsuid32 setfsgid setfsgid32 setgroups setgroups32

    rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
    rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sigaltstack sigprocmask
    sigreturn pause alarm

    futex futex_time64 futex_waitv nanosleep clock_nanosleep clock_nanosleep_time64
    clock_gettime clock_gettime64 clock_getres clock_getres_time64 clock_adjtime
    clock_adjtime64 adjtimex gettimeofday time times getitimer setitimer timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
    timer_settime64

    sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
    sched_getparam sched_setparam sched_getscheduler sched_setscheduler
    sched_get_priority_max sched_get_priority_min sched_rr_get_interval
    sched_rr_get_interval_time64 getpriority setpriority getcpu

    getrlimit setrlimit ugetrlimit prlimit64 getrusage getrandom sysinfo uname

    ipc msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64 semctl
    shmget shmat shmdt shmctl mq_open mq_unlink mq_timedsend mq_timedsend_time64
    mq_timedreceive mq_timedreceive_time64 mq_notify mq_getsetattr
"""

BASE_SYSCALLS: tuple[str, ...] = tuple(sorted(set(_BASE_SYSCALLS.split())))

# Syscalls a capability unlocks (the kernel checks the capability too; seccomp keeps
# their attack surface closed to containers that were not granted it).
_SYS_ADMIN_SYSCALLS = (
    "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
    "mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname "
    "sethostname setns syslog umount umount2 unshare"
)
_CAPABILITY_SYSCALLS: tuple[tuple[str, str], ...] = (
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_ADMIN", _SYS_ADMIN_SYSCALLS),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
)

# Syscalls that exist only on some architectures (Go's names, as Docker profiles use).
_ARCH_SYSCALLS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ppc64le",), "sync_file_range2 swapcontext"),
    (
        ("arm", "arm64"),
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ),
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (("riscv64",), "riscv_flush_icache"),
)


class _Arch(NamedTuple):
    """How one machine is named by Go (profile filters) and by libseccomp."""

    go: str
    native: str
    compat: tuple[str, ...] = ()


# Keyed by `uname -m`; the first four are those Docker's default archMap lists.
_ARCHES: dict[str, _Arch] = {
    "x86_64": _Arch("amd64", "SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "aarch64": _Arch("arm64", "SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
    "s390x": _Arch("s390x", "SCMP_ARCH_S390X", ("SCMP_ARCH_S390",)),
    "riscv64": _Arch("riscv64", "SCMP_ARCH_RISCV64"),
    "ppc64le": _Arch("ppc64le", "SCMP_ARCH_PPC64LE"),
}
_ARCH_MAP_MACHINES = ("x86_64", "aarch64", "s390x", "riscv64")
# Go's names for the same machines, for callers that speak Go's (or Docker's) dialect.
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def _arch(machine: str) -> _Arch:
    known = _ARCHES.get(_MACHINE_ALIASES.get(machine, machine))
    # An unknown machine still gets a profile: libseccomp then filters the native ABI only.
    return known if known is not None else _Arch(machine, "")


def _rule(
    names: str,
    *,
    action: str = ALLOW,
    args: list[dict[str, object]] | None = None,
    errno: int | None = None,
    includes: dict[str, object] | None = None,
    excludes: dict[str, object] | None = None,
) -> dict[str, object]:
    rule: dict[str, object] = {"names": names.split(), "action": action}
    if args:
        rule["args"] = args
    if errno is not None:
        rule["errnoRet"] = errno
    if includes:
        rule["includes"] = includes
    if excludes:
        rule["excludes"] = excludes
    return rule


def _arg(index: int, value: int, op: str, value_two: int = 0) -> dict[str, object]:
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


def docker_default_profile() -> dict[str, object]:
    """Docker's default profile in Docker's own format (conditions not yet resolved)."""
    rules = [
        _rule(" ".join(BASE_SYSCALLS)),
        # Before 4.8 seccomp could be bypassed with ptrace, so only newer kernels get it.
        _rule("process_vm_readv process_vm_writev ptrace", includes={"minKernel": "4.8"}),
        # AF_VSOCK sockets reach the hypervisor, outside the container's network namespace.
        _rule("socket", args=[_arg(0, AF_VSOCK, "SCMP_CMP_NE")]),
    ]
    rules += [
        _rule("personality", args=[_arg(0, persona, "SCMP_CMP_EQ")]) for persona in ALLOWED_PERSONAS
    ]
    rules += [_rule(names, includes={"arches": list(arches)}) for arches, names in _ARCH_SYSCALLS]
    rules += [_rule(names, includes={"caps": [cap]}) for cap, names in _CAPABILITY_SYSCALLS]
    masked = "SCMP_CMP_MASKED_EQ"
    rules += [
        # Plain clone is fine as long as it creates no namespace; s390 swaps clone's first
        # two arguments, so the flags are argument 1 there.
        _rule(
            "clone",
            args=[_arg(0, CLONE_NAMESPACE_FLAGS, masked)],
            excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]},
        ),
        _rule(
            "clone",
            args=[_arg(1, CLONE_NAMESPACE_FLAGS, masked)],
            includes={"arches": ["s390", "s390x"]},
            excludes={"caps": ["CAP_SYS_ADMIN"]},
        ),
        # clone3 passes its flags in memory seccomp cannot inspect: answer ENOSYS so libc
        # falls back to clone, which the rule above can check.
        _rule("clone3", action=ERRNO, errno=ENOSYS, excludes={"caps": ["CAP_SYS_ADMIN"]}),
    ]
    arch_map = [
        {"architecture": _ARCHES[m].native, "subArchitectures": list(_ARCHES[m].compat)}
        for m in _ARCH_MAP_MACHINES
    ]
    return {
        "defaultAction": ERRNO,
        "defaultErrnoRet": EPERM,
        "archMap": arch_map,
        "syscalls": rules,
    }


def _kernel_at_least(kernel: tuple[int, int] | None, wanted: object) -> bool:
    if kernel is None:
        return True
    try:
        major, _, minor = str(wanted).partition(".")
        return kernel >= (int(major), int(minor or 0))
    except ValueError as exc:
        raise InvalidParameter(f"invalid minKernel in seccomp profile: {wanted!r}") from exc


def _strings(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(
            f"invalid seccomp profile: expected a list of strings, got {value!r}"
        )
    return list(value)


def _applies(
    rule: Mapping[str, object],
    capabilities: Collection[str],
    arch: _Arch,
    kernel: tuple[int, int] | None,
) -> bool:
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    if not isinstance(includes, Mapping) or not isinstance(excludes, Mapping):
        raise InvalidParameter("invalid seccomp profile: includes/excludes must be objects")
    if not all(cap in capabilities for cap in _strings(includes.get("caps"))):
        return False
    arches = _strings(includes.get("arches"))
    if arches and arch.go not in arches:
        return False
    if "minKernel" in includes and not _kernel_at_least(kernel, includes["minKernel"]):
        return False
    if any(cap in capabilities for cap in _strings(excludes.get("caps"))):
        return False
    if arch.go in _strings(excludes.get("arches")):
        return False
    return not ("minKernel" in excludes and _kernel_at_least(kernel, excludes["minKernel"]))


def _architectures(profile: Mapping[str, object], arch: _Arch) -> list[str]:
    if "architectures" in profile and "archMap" in profile:
        raise InvalidParameter(
            "use either 'architectures' or 'archMap' in the seccomp profile, not both"
        )
    if "architectures" in profile:
        return _strings(profile["architectures"])
    arch_map = profile.get("archMap") or []
    if not isinstance(arch_map, list):
        raise InvalidParameter("invalid seccomp profile: archMap must be a list")
    for entry in arch_map:
        if isinstance(entry, Mapping) and entry.get("architecture") == arch.native:
            return [arch.native, *_strings(entry.get("subArchitectures"))]
    return []


def _oci_syscall(rule: Mapping[str, object]) -> dict[str, object]:
    if "name" in rule and "names" in rule:
        raise InvalidParameter("use either 'name' or 'names' in a seccomp profile rule, not both")
    names = [rule["name"]] if isinstance(rule.get("name"), str) else _strings(rule.get("names"))
    action = rule.get("action")
    if not names or not isinstance(action, str):
        raise InvalidParameter("invalid seccomp profile: each rule needs names and an action")
    out: dict[str, object] = {"names": names, "action": action}
    args = rule.get("args")
    if args:
        if not isinstance(args, list):
            raise InvalidParameter("invalid seccomp profile: args must be a list")
        out["args"] = args
    if rule.get("errnoRet") is not None:
        out["errnoRet"] = rule["errnoRet"]
    return out


def resolve_profile(
    profile: Mapping[str, object],
    capabilities: Collection[str],
    machine: str,
    kernel: tuple[int, int] | None = None,
    *,
    missing_abis: Collection[str] = (),
) -> dict[str, object]:
    """A Docker-format profile as the OCI `linux.seccomp` object for this container and host.

    `capabilities` is the container's bounding set; `machine` is `uname -m`; `kernel`
    (major, minor) decides "minKernel" conditions, None meaning "new enough";
    `missing_abis` are architectures the kernel cannot run, left out of the filter.
    """
    arch = _arch(machine)
    default_action = profile.get("defaultAction")
    if not isinstance(default_action, str) or not default_action:
        raise InvalidParameter("invalid seccomp profile: defaultAction is required")
    rules = profile.get("syscalls") or []
    if not isinstance(rules, list):
        raise InvalidParameter("invalid seccomp profile: syscalls must be a list")
    syscalls = []
    for rule in rules:
        if not isinstance(rule, Mapping):
            raise InvalidParameter("invalid seccomp profile: each syscall rule must be an object")
        if _applies(rule, capabilities, arch, kernel):
            syscalls.append(_oci_syscall(rule))
    resolved: dict[str, object] = {
        "defaultAction": default_action,
        "architectures": [a for a in _architectures(profile, arch) if a not in missing_abis],
        "syscalls": syscalls,
    }
    if profile.get("defaultErrnoRet") is not None:
        resolved["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            resolved[key] = profile[key]
    return resolved


def default_profile(
    capabilities: Collection[str],
    arch: str,
    kernel: tuple[int, int] | None = None,
    *,
    missing_abis: Collection[str] = (),
) -> dict[str, object]:
    """Docker's default profile resolved for a container holding `capabilities` on `arch`."""
    return resolve_profile(
        docker_default_profile(), capabilities, arch, kernel, missing_abis=missing_abis
    )


def load_profile(text: str) -> dict[str, object]:
    """Parse the JSON text of `--security-opt seccomp=<profile>` (Docker's format)."""
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise InvalidParameter(f"Decoding seccomp profile failed: {exc}") from exc
    if not isinstance(profile, dict):
        raise InvalidParameter("Decoding seccomp profile failed: expected a JSON object")
    return profile
