"""The distribution client: pull, push and login against OCI distribution registries
(spec 1.1), with Docker's authentication, TLS rules and progress messages.
"""
