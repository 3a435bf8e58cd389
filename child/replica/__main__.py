"""`python -m child.replica`: serve the replica on its own, for a look in a browser, for the
coordinator's `--demo`, or for a test that wants it in a separate process.

The answer endpoint listens on `--api-port` (a free port when 0) over HTTPS; `--ca-file`
writes the CA that signed its certificate where the caller wants it, so a process that
starts the replica knows both before the first page loads. SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
from pathlib import Path

from child.replica.config import ReplicaConfig
from child.replica.drift import DRIFTS
from child.replica.server import ReplicaServer


def _names(text: str) -> frozenset[str]:
    return frozenset(name.strip() for name in text.split(",") if name.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ReplicaConfig()
    parser = argparse.ArgumentParser(prog="python -m child.replica", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="the page's port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-port", type=int, default=0, help="the answer endpoint's port (HTTPS); 0: free")
    parser.add_argument("--ca-file", type=Path, help="write the answer endpoint's CA (PEM) here")
    parser.add_argument(
        "--session",
        action="extend",
        nargs="+",
        default=[],
        metavar="VALUE",
        help="a session cookie value to accept without logging in (repeatable)",
    )
    parser.add_argument("--first-token-ms", type=int, default=defaults.first_token_ms)
    parser.add_argument("--token-ms", type=int, default=defaults.token_ms)
    parser.add_argument(
        "--quota-after", type=int, default=0, help="runs per session and model before quota; 0 = never"
    )
    parser.add_argument("--model", action="append", dest="models", metavar="ID", help="offer this model id")
    parser.add_argument("--default-model", help=f"the page's default (default {defaults.default_model})")
    comma = "comma-separated model ids"
    parser.add_argument("--thinking-models", type=_names, help=f"{comma} that think first ('' for none)")
    parser.add_argument("--no-sampling-models", type=_names, help=f"{comma} without temperature and top-p")
    parser.add_argument("--permission-denied", type=_names, help=f"{comma} whose requests are refused (403)")
    parser.add_argument("--no-popups", action="store_true", help="no cookie bar, vote or survey at load")
    parser.add_argument("--popup-delay-ms", type=int, default=defaults.popup_delay_ms)
    parser.add_argument("--upload-ms", type=int, default=defaults.upload_ms)
    drift_help = f"comma-separated elements to rename: {','.join(DRIFTS)}"
    parser.add_argument("--drift", type=_names, default=frozenset(), help=drift_help)
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> ReplicaConfig:
    """The settings the flags ask for; ValueError says what is wrong with them."""
    options: dict[str, object] = {
        "sessions": frozenset(args.session),
        "first_token_ms": args.first_token_ms,
        "token_ms": args.token_ms,
        "quota_after": args.quota_after,
        "popups": not args.no_popups,
        "popup_delay_ms": args.popup_delay_ms,
        "upload_ms": args.upload_ms,
        "drift": args.drift,
    }
    if args.models:
        options["models"] = tuple(args.models)
    optional = {
        "default_model": args.default_model,
        "thinking_models": args.thinking_models,
        "no_sampling_models": args.no_sampling_models,
        "permission_denied": args.permission_denied,
    }
    options.update({key: value for key, value in optional.items() if value is not None})
    if args.models:
        # A model list of one's own: the defaults that name other models do not apply.
        defaults = ReplicaConfig()
        if args.default_model is None:
            options["default_model"] = (
                defaults.default_model if defaults.default_model in args.models else args.models[0]
            )
        for key in ("thinking_models", "no_sampling_models"):
            if optional[key] is None:
                options[key] = getattr(defaults, key) & set(args.models)
    return ReplicaConfig(**options)  # type: ignore[arg-type]


async def run(config: ReplicaConfig, args: argparse.Namespace) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    async with ReplicaServer(config, args.host, args.port, args.api_port) as replica:
        if args.ca_file is not None:
            shutil.copyfile(replica.ca_file, args.ca_file)
        ca_file = args.ca_file or replica.ca_file
        print(
            f"replica: open {replica.chat_url}; answers from {replica.api_url} (CA {ca_file})",
            file=sys.stderr,
            flush=True,
        )
        await stopping.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(run(config, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
