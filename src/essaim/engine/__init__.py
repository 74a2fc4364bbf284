"""The container lifecycle service: create/start/stop/kill/wait/rm, attach, logs,
the exit monitor and re-adoption of containers that outlived the daemon.
"""
