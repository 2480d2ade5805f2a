"""`sluice-evaluator` / `python -m reconciler.evaluator --config FILE`: the evaluator's container command.

Serves until SIGTERM or SIGINT (Kubernetes' stop), then stops taking samples and exits 0.
Exit 2 when the config cannot be used (the message names the file, the field and the fix).
Logs go to stderr and never carry a prompt or an answer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from .config import DEFAULT_PATH, ConfigError, EvaluatorConfig, load_config
from .service import EvaluatorService

log = logging.getLogger("reconciler.evaluator")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sluice-evaluator", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_PATH, help=f"the evaluator's JSON config ({DEFAULT_PATH})")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (the config's listen_port)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        return asyncio.run(serve(config, args.host, args.port))
    except ConfigError as exc:
        print(f"sluice-evaluator: {exc}", file=sys.stderr)
        return 2


async def serve(config: EvaluatorConfig, host: str, port: int | None) -> int:
    service = EvaluatorService(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    bound = await service.start(host, port)
    log.info("evaluating %s: stable %s, candidate %s; listening on %s:%d (max_concurrency %d, queue_size %d)",
             config.app, config.stable.version, config.candidate.version, host, bound,
             config.max_concurrency, config.queue_size)
    await stopping.wait()
    log.info("stopping")
    await service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
