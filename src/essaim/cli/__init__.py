"""The `essaim` command line: daemon-side helpers (base image), and later compose,
machine and registry front-ends.
"""
