"""`pixelsmith zoo list|show|verify` and `pixelsmith train zoo:NAME`: thin wrappers over
`pixelsmith.zoo`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pixelsmith.errors import UserError


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


def _list(args: argparse.Namespace) -> int:  # noqa: ARG001
    from pixelsmith import zoo

    found = zoo.entries()
    if not found:
        print(f"the zoo in {zoo.root()} holds no models yet")
        return 0
    rows = [("name", "family", "size", "result", "task")]
    for e in found.values():
        size = e.file.stat().st_size if e.file.is_file() else e.size_bytes
        rows.append((e.name, e.family, _size(size), e.headline(), e.task))
    print(_table(rows))
    return 0


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _show(args: argparse.Namespace) -> int:
    from pixelsmith import zoo

    e = zoo.entry(args.name)
    if args.json:
        print(json.dumps({"name": e.name, **e.record}, indent=2))
        return 0
    r, res = e.recipe, e.results
    lines = [
        f"{e.ref}: {e.task}",
        f"  family {e.family}, preset {e.preset}, file {e.file} ({_size(e.size_bytes)}), "
        f"sha256 {e.sha256}",
        "recipe:",
        f"  {r.get('command', '-')}",
        f"  seed {r.get('seed', '-')}, steps {r.get('steps', '-')}",
    ]
    data = r.get("data", "-")
    if isinstance(data, dict):
        lines.append(f"  data: {data.get('description', '-')}")
        lines += [
            f"    {f.get('name', f.get('path', '?'))}  sha256 {f['sha256']}"
            for f in data.get("files", [])
        ]
    else:
        lines.append(f"  data: {data}")
    if e.record.get("privacy"):
        from pixelsmith.metrics.cards import privacy_line

        lines.append(f"  privacy: {privacy_line(e.record['privacy'])}")
    lines += ["results:", f"  {res.get('command', '-')}"]
    for key in ("split", "reference", "n", "features"):
        if key in res:
            lines.append(f"  {key}: {res[key]}")
    rows = [("  metric", "value")] + [
        (f"  {k}", _value(v)) for k, v in (res.get("metrics") or {}).items()
    ]
    lines.append(_table(rows))
    print("\n".join(lines))
    return 0


def _verify(args: argparse.Namespace) -> int:  # noqa: ARG001
    from pixelsmith import zoo

    results = zoo.verify()
    if not results:
        print(f"the zoo in {zoo.root()} holds no models to verify")
        return 0
    for name, ok, why in results:
        print(f"{'ok' if ok else 'DAMAGED':8} {name}  {why}")
    bad = [name for name, ok, _ in results if not ok]
    if bad:
        print(
            f"pixelsmith: error: zoo model {', '.join(bad)} failed its sha256 check; reinstall "
            "pixelsmith to restore it",
            file=sys.stderr,
        )
        return 1
    return 0


def remake(args: argparse.Namespace, overrides: list[str]) -> int:
    """`pixelsmith train zoo:NAME`: train the entry's recorded config, then compare."""
    import yaml

    from pixelsmith import config as cfglib
    from pixelsmith import zoo
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import train

    e = zoo.entry(args.model)
    saved = e.recipe.get("config")
    if not isinstance(saved, dict):
        raise UserError(f"{e.ref} records no config to re-make it from; see pixelsmith zoo show")
    cfg = build_config(saved["preset"], args.config, overrides, base=saved)
    if args.dry_run:
        print(yaml.safe_dump(cfglib.to_dict(cfg), sort_keys=False), end="")
        return 0
    print(f"re-making {e.ref}: {e.recipe.get('command', '')}", file=sys.stderr)
    run = train(cfg, out_root=args.out, progress=not args.quiet)
    print(zoo.remake_check(e.name, run))
    return 0


def add_parser(verbs: Any) -> None:
    """Register `pixelsmith zoo ...` on the CLI's sub-parsers."""
    z = verbs.add_parser("zoo", help="the pretrained models shipped with pixelsmith (zoo:NAME)")
    zv = z.add_subparsers(dest="zoo_verb", metavar="ACTION", required=True)
    ls = zv.add_parser("list", help="the zoo's models: family, size, headline result, task")
    ls.set_defaults(func=_list)
    sh = zv.add_parser("show", help="a zoo model's recipe and measured results")
    sh.add_argument("name", metavar="NAME")
    sh.add_argument("--json", action="store_true", help="the index entry as JSON")
    sh.set_defaults(func=_show)
    ve = zv.add_parser("verify", help="check every zoo file's sha256 (exit 1 on a mismatch)")
    ve.set_defaults(func=_verify)
