"""`essaim registry`: an OCI distribution spec 1.1 registry server (the Docker Registry
HTTP API V2), its filesystem storage, authentication, token server and garbage collector.
"""
