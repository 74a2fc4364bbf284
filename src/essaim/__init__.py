"""essaim: a Docker-compatible container platform.

The engine daemon lives in `essaim.daemon`; the command line in `essaim.cli`.
"""

__version__ = "0.1.0"
# The Engine API version we claim, and the oldest we serve (see docs/engine-api-notes).
API_VERSION = (1, 45)
MIN_API_VERSION = (1, 24)
