"""`python -m child.replica`: serve the replica on its own, for a look in a browser or for
a test that wants it in a separate process.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from child.replica.app import CHAT_PATH, create_app
from child.replica.config import ReplicaConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m child.replica", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--session",
        action="extend",
        nargs="+",
        default=[],
        metavar="VALUE",
        help="a session cookie value to accept without logging in (repeatable)",
    )
    parser.add_argument("--first-token-ms", type=int, default=200)
    parser.add_argument("--token-ms", type=int, default=30)
    parser.add_argument("--quota-after", type=int, default=0, help="runs per session before quota; 0 = never")
    parser.add_argument("--model", action="append", dest="models", metavar="ID", help="offer this model id")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = ReplicaConfig(
            sessions=frozenset(args.session),
            first_token_ms=args.first_token_ms,
            token_ms=args.token_ms,
            quota_after=args.quota_after,
            **({"models": tuple(args.models)} if args.models else {}),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"replica: open http://{args.host}:{args.port}{CHAT_PATH}", file=sys.stderr, flush=True)
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        lifespan="off",
        ws="none",
        access_log=False,
        log_level="info",
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
