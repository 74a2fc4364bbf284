"""`essaim registry serve|gc|image`: run the registry server on a storage root, collect
the blobs no manifest references while it is stopped, or build it as a container image.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from pathlib import Path

GC_HELP = (
    "remove blobs no manifest of any repository references (following indexes, configs, "
    "layers and subjects). Run it while the registry server is stopped: it refuses a root "
    "a server holds."
)


def _addr(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _duration(value: str) -> float:
    """Seconds, from a Go duration or a plain number of seconds."""
    from essaim.errors import InvalidParameter
    from essaim.image.changes import parse_duration

    if re.fullmatch(r"[0-9]+(?:\.[0-9]*)?", value):
        return float(value)
    try:
        nanoseconds = parse_duration(value)
    except InvalidParameter as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if nanoseconds < 0:
        raise argparse.ArgumentTypeError(f"a duration cannot be negative: {value!r}")
    return nanoseconds / 1e9


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    registry = sub.add_parser("registry", help="an OCI distribution registry")
    commands = registry.add_subparsers(dest="registry_command", required=True)

    serve = commands.add_parser("serve", help="serve the registry API")
    serve.add_argument("--addr", type=_addr, default=("127.0.0.1", 5000), help="HOST:PORT")
    serve.add_argument("--root", type=Path, default=Path("/var/lib/registry"))
    serve.add_argument("--tls-cert", type=Path)
    serve.add_argument("--tls-key", type=Path)
    serve.add_argument("--htpasswd", type=Path, help="bcrypt htpasswd file (Basic auth)")
    serve.add_argument("--realm", default="essaim registry", help="the Basic auth realm")
    serve.add_argument(
        "--token-cert", type=Path, help="trust bearer tokens signed for this certificate"
    )
    serve.add_argument(
        "--token-key", type=Path, help="also be the token server (/auth/token), with this key"
    )
    serve.add_argument("--token-realm", help="where clients get tokens (default: our own)")
    serve.add_argument("--token-service", default="essaim-registry")
    serve.add_argument("--token-issuer", default="essaim-token-issuer")
    serve.add_argument("--token-lifetime", type=int, default=300, help="seconds")
    serve.add_argument(
        "--upload-purge-age",
        type=_duration,
        default="168h",
        metavar="DURATION",
        help="remove upload sessions begun longer ago than this (default 168h); a Go "
        "duration (168h, 30m, 1h30m, 90s) or seconds; 0 disables purging",
    )
    serve.add_argument(
        "--upload-purge-interval",
        type=_duration,
        default="24h",
        metavar="DURATION",
        help="how often to look for such sessions, after a first look at start-up "
        "(default 24h); 0 disables purging",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    gc = commands.add_parser("gc", help=GC_HELP, description=GC_HELP)
    gc.add_argument("--root", type=Path, required=True)
    gc.add_argument(
        "--delete-untagged", action="store_true", help="also remove manifests no tag reaches"
    )
    gc.add_argument("--dry-run", action="store_true", help="only print what would be removed")

    image = commands.add_parser(
        "image", help="build the registry as a container image in an engine (essaimd or Docker)"
    )
    image.add_argument(
        "-H", "--host", default=os.environ.get("DOCKER_HOST", "unix:///run/essaim/essaim.sock")
    )
    image.add_argument("--tag", default="essaim/registry:latest")
    image.add_argument("--port", type=int, default=5000, help="the port its default command serves")


def run(args: argparse.Namespace) -> int:
    if args.registry_command == "serve":
        return _serve(args)
    if args.registry_command == "image":
        from essaim.cli.registry_image import build_registry_image

        print(build_registry_image(args.host, args.tag, args.port))
        return 0
    return _gc(args)


def _serve(args: argparse.Namespace) -> int:
    from essaim.image.registry.purge import UploadPurging
    from essaim.image.registry.serve import RegistryConfig, RootBusy, serve

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        print("essaim registry: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if args.token_key and not args.token_cert:
        print("essaim registry: --token-key needs --token-cert", file=sys.stderr)
        return 2
    host, port = args.addr
    config = RegistryConfig(
        root=args.root,
        host=host,
        port=port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        htpasswd=args.htpasswd,
        realm=args.realm,
        token_cert=args.token_cert,
        token_key=args.token_key,
        token_realm=args.token_realm,
        token_service=args.token_service,
        token_issuer=args.token_issuer,
        token_lifetime=args.token_lifetime,
        upload_purging=UploadPurging(args.upload_purge_age, args.upload_purge_interval),
    )
    try:
        asyncio.run(serve(config))
    except RootBusy as exc:
        print(f"essaim registry: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"essaim registry: {exc}", file=sys.stderr)
        return 1
    return 0


def _gc(args: argparse.Namespace) -> int:
    from essaim.image.registry.gc import collect
    from essaim.image.registry.serve import RootBusy, root_lock
    from essaim.image.registry.storage import RegistryStorage

    if not (args.root / "blobs").is_dir():
        print(f"essaim registry gc: {args.root} is not a registry root", file=sys.stderr)
        return 1
    try:
        with root_lock(args.root, "essaim registry gc"):
            report = collect(RegistryStorage(args.root), args.delete_untagged, args.dry_run)
    except RootBusy as exc:
        print(f"essaim registry gc: {exc}; stop the server first", file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    for name, digest in report.deleted_manifests:
        print(f"{name}: manifest {digest} {verb}")
    for digest in report.deleted_blobs:
        print(f"blob {digest} {verb}")
    print(
        f"{len(report.marked)} blobs marked, {len(report.deleted_blobs)} blobs and "
        f"{len(report.deleted_manifests)} manifests {verb}"
    )
    return 0
