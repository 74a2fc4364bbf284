"""Volumes and mounts: the local volume driver, the volume service, and the parsing and
resolution of a container's binds, volumes and tmpfs mounts into OCI mounts.
"""
