"""`pixelsmith serve RUN [RUN ...]`: a thin wrapper over pixelsmith.serve."""

from __future__ import annotations

import argparse
import os

from pixelsmith.cli.keyfile import add_encrypt_option
from pixelsmith.errors import UserError


def _serve(args: argparse.Namespace) -> int:
    from pixelsmith.serve.app import ServeConfig, create_app, load_served

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
    for name in ("workers", "queue", "max_pixels"):
        if getattr(args, name) < (0 if name == "queue" else 1):
            raise UserError(
                f"--{name.replace('_', '-')} must be at least {0 if name == 'queue' else 1}"
            )
    if not args.timeout > 0 or not args.max_upload_mb > 0:
        raise UserError("--timeout and --max-upload-mb must be above 0")
    config = ServeConfig(
        workers=args.workers,
        queue=args.queue,
        timeout_s=args.timeout,
        max_upload=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels,
        max_output_pixels=max(args.max_pixels, ServeConfig.max_output_pixels),
    )
    from pixelsmith.deploy.choice import choose_backend
    from pixelsmith.jobs.stamp import service_stamp

    if args.no_watermark and args.watermark:
        raise UserError("--no-watermark turns marking off; leave out --watermark KEYFILE")
    if args.no_credentials and args.credentials:
        raise UserError("--no-credentials turns signing off; leave out --credentials DIR")
    stamp = service_stamp(
        watermark=False if args.no_watermark else args.watermark or True,
        credentials=False if args.no_credentials else args.credentials or True,
        cert=args.cert,
        key=args.key,
        log=lambda line: print(line, flush=True),
    )
    served = load_served(args.runs)
    for name, s in served.items():
        if not s.model.abilities.generates:
            continue
        choice = choose_backend(
            s.model,
            args.backend,
            log=lambda line, name=name: print(f"{name}: {line}", flush=True),
            retime=args.retime,
        )
        s.backend = choice.backend
        if choice.remembered:
            about = f"{choice.name} (remembered from an earlier start; --retime to time again)"
        else:
            about = choice.description
        print(f"{name}: serving through {about}", flush=True)
    app = create_app(served, api_key=key, config=config, stamp=stamp)
    print(stamp.summary(), flush=True)
    print(
        f"pixelsmith serving {', '.join(args.runs)} on http://{args.host}:{args.port}/", flush=True
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `pixelsmith serve`."""
    from pixelsmith.serve.app import ServeConfig  # no FastAPI import: that waits for the call

    about = (
        "serve generators over HTTP (OpenAPI at /docs); beyond loopback it needs "
        "PIXELSMITH_API_KEY, sent by clients as Authorization: Bearer KEY"
    )
    p = verbs.add_parser("serve", help=about, description=about)
    p.add_argument("runs", nargs="+", metavar="RUN|CHECKPOINT|zoo:NAME")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    d = ServeConfig()
    p.add_argument("--workers", type=int, default=d.workers, help="jobs run at once (default 1)")
    p.add_argument(
        "--queue", type=int, default=d.queue, help="jobs that may wait; more get 429 (default 8)"
    )
    p.add_argument(
        "--timeout", type=float, default=d.timeout_s, help="seconds per request before 503"
    )
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload / 2**20)
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "eager", "channels_last", "compile", "onnxruntime"),
        help="how generators run; auto (default) times the ladder at the first start, takes the "
        "fastest that agrees with eager and remembers the choice for later starts",
    )
    p.add_argument(
        "--retime",
        action="store_true",
        help="with --backend auto, time the backends again instead of taking the choice "
        "remembered from an earlier start (the new choice is remembered)",
    )
    p.add_argument(
        "--max-pixels", type=int, default=d.max_pixels, help="the most pixels an upload may declare"
    )
    g = p.add_argument_group(
        "marks and content credentials (on by default: every image returned carries both)"
    )
    g.add_argument(
        "--watermark",
        metavar="KEYFILE",
        help="mark with this key instead of the service's own (made on the first start in the "
        "credentials directory as service-watermark.json)",
    )
    g.add_argument("--no-watermark", action="store_true", help="return images without a mark")
    g.add_argument(
        "--credentials",
        metavar="DIR",
        help="sign with the credentials in DIR instead of the local ones "
        "($PIXELSMITH_CREDENTIALS or ~/.config/pixelsmith/credentials, made on the first start)",
    )
    g.add_argument("--cert", metavar="CHAIN.pem", help="sign with your own certificate chain")
    g.add_argument("--key", metavar="KEY.pem", help="the key of --cert")
    g.add_argument("--no-credentials", action="store_true", help="return images without a manifest")
    add_encrypt_option(p)
    p.set_defaults(func=_serve)
