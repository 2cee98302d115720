"""Command line of the results store.

``python -m damlib.experiments list``
    every registered experiment, its shards, and whether each is stored, absent, stale or corrupt.
``python -m damlib.experiments run NAME [SHARD ...] [--force] [--threads N]``
    compute the named shards of ``NAME`` (all of them when none is named), skipping those already
    stored with the same parameters. Each shard is independent: a cluster runs one
    ``run NAME SHARD`` per job of a job array.

The store's root is ``results/`` beside the damlib package, or ``DAMLIB_RESULTS``.
"""

from __future__ import annotations

import argparse
import sys

import torch

from .. import store
from ..progress import bar
from . import REGISTRY, get, run_shard, state


def _list(args) -> int:
    root = store.resolve_root()
    print(f"results store: {root}")
    if not REGISTRY:
        print("no experiments registered")
        return 0
    for name in REGISTRY:
        experiment = REGISTRY[name]
        print(f"{name}: {experiment.description}" if experiment.description else name)
        width = max(len(s) for s in experiment.shards)
        for shard in experiment.shards:
            what, detail = state(name, shard)
            print(f"  {shard:<{width}}  {what}" + (f" ({detail})" if detail else ""))
    return 0


def _run(args) -> int:
    try:  # unknown names fail with a message before any work; errors of a run keep their traceback
        experiment = get(args.name)
        shards = args.shards or list(experiment.shards)
        for shard in shards:
            experiment.shard_params(shard)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    for shard in bar(shards, total=len(shards), desc=args.name):
        found, ran = run_shard(args.name, shard, force=args.force)
        took = store.duration(found.meta["seconds"])
        if ran:
            print(f"{args.name}/{shard}: computed in {took} on {found.meta['device']}, stored at {found.path}")
        else:
            print(f"{args.name}/{shard}: up to date (computed in {took} on {found.meta['date'][:10]}), "
                  "skipped; --force recomputes it")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m damlib.experiments", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="registered experiments and the state of each shard")
    run = commands.add_parser("run", help="compute shards of one experiment into the store")
    run.add_argument("name", help="the experiment")
    run.add_argument("shards", nargs="*", metavar="SHARD", help="shards to compute (default: all)")
    run.add_argument("--force", action="store_true", help="recompute shards that are up to date")
    run.add_argument("--threads", type=_positive, help="torch CPU threads (default: torch's own choice)")
    args = parser.parse_args(argv)
    return _list(args) if args.command == "list" else _run(args)


if __name__ == "__main__":
    sys.exit(main())
