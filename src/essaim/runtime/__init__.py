"""The OCI runtime side: bundle config generation (namespaces, cgroups, capabilities,
seccomp, mounts, rlimits) and the conmon driver that runs and re-adopts containers.
"""
