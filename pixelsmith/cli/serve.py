"""`pixelsmith serve RUN [RUN ...]`: a thin wrapper over pixelsmith.serve."""

from __future__ import annotations

import argparse

from pixelsmith.errors import UserError


def _serve(args: argparse.Namespace) -> int:
    from pixelsmith.serve.app import create_app, load_served

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise UserError(
            "this first version serves loopback only (no API keys yet); leave out --host"
        )
    try:
        import uvicorn
    except ImportError:
        raise UserError(
            "the service needs the serve extra: pip install 'pixelsmith[serve]'"
        ) from None
    app = create_app(load_served(args.runs))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `pixelsmith serve`."""
    about = "serve generators over HTTP (OpenAPI at /docs)"
    p = verbs.add_parser("serve", help=about, description=about)
    p.add_argument("runs", nargs="+", metavar="RUN|CHECKPOINT|zoo:NAME")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_serve)
