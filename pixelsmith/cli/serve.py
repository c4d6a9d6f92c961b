"""`pixelsmith serve RUN [RUN ...]`: a thin wrapper over pixelsmith.serve."""

from __future__ import annotations

import argparse
import os

from pixelsmith.errors import UserError


def _serve(args: argparse.Namespace) -> int:
    from pixelsmith.serve.app import create_app, load_served

    key = os.environ.get("PIXELSMITH_API_KEY") or None
    if args.host not in ("127.0.0.1", "localhost", "::1") and not key:
        raise UserError(
            f"serving on {args.host} (beyond this machine) needs an API key: set "
            "PIXELSMITH_API_KEY; clients then send Authorization: Bearer KEY"
        )
    if key is not None and len(key) < 16:
        raise UserError("PIXELSMITH_API_KEY must be at least 16 characters")
    try:
        import uvicorn
    except ImportError:
        raise UserError(
            "the service needs the serve extra: pip install 'pixelsmith[serve]'"
        ) from None
    app = create_app(load_served(args.runs), api_key=key)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `pixelsmith serve`."""
    about = (
        "serve generators over HTTP (OpenAPI at /docs); beyond loopback it needs "
        "PIXELSMITH_API_KEY, sent by clients as Authorization: Bearer KEY"
    )
    p = verbs.add_parser("serve", help=about, description=about)
    p.add_argument("runs", nargs="+", metavar="RUN|CHECKPOINT|zoo:NAME")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_serve)
