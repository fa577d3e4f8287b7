"""The command-line options of the engines (``--engine``, ``--ray-address``, ``--num-workers``,
``--num-gpus-per-worker``, ``--num-cpus-per-worker``), shared by ``hf-xclip classify``, ``timeline`` and ``index``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from .engine import ENGINES, EngineOptions

# The `EngineOptions` fields the options below set, by their argparse names (``videos_per_call`` is the command's).
_ENGINE_ARGUMENTS = ("engine", "ray_address", "num_workers", "num_gpus_per_worker", "num_cpus_per_worker")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine (see docs/distributed.md)")
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local (default): this process; ray: Ray Data workers (needs hf_xclip[ray] and --output)",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to run on (e.g. auto, ray://head:10001); default: start a local Ray",
    )
    group.add_argument(
        "--num-workers", type=int, default=1, metavar="N", help="Ray workers, each holding one model (default 1)"
    )
    group.add_argument(
        "--num-gpus-per-worker",
        type=float,
        default=0.0,
        metavar="G",
        help="GPUs per Ray worker (default 0: CPU workers)",
    )
    group.add_argument(
        "--num-cpus-per-worker", type=float, default=1.0, metavar="C", help="CPUs reserved per Ray worker (default 1)"
    )


def engine_options(args: argparse.Namespace, videos_per_call: int) -> EngineOptions:
    """`EngineOptions` from the parsed arguments.

    Raises:
        ValueError: naming the bad option.
    """
    for name in ("num_workers", "num_gpus_per_worker", "num_cpus_per_worker"):
        value = getattr(args, name)
        low, strict = (1, False) if name == "num_workers" else (0, name == "num_cpus_per_worker")
        if value < low or (strict and value == 0):
            sign = ">" if strict else ">="
            raise ValueError(f"--{name.replace('_', '-')} must be {sign} {low}, got {value}")
    if args.engine != "ray":
        given = [f"--{n.replace('_', '-')}" for n in ("ray_address",) if getattr(args, n)]
        given += ["--num-workers"] if args.num_workers != 1 else []
        given += ["--num-gpus-per-worker"] if args.num_gpus_per_worker else []
        if given:
            raise ValueError(f"{', '.join(given)} need --engine ray")
    return EngineOptions(**{name: getattr(args, name) for name in _ENGINE_ARGUMENTS}, videos_per_call=videos_per_call)


def report_job(command: str, job: Callable[[], Any]) -> int:
    """Run a prediction job for ``hf-xclip COMMAND``: one line per failed video on stderr, a summary on stdout;
    the exit status (`hf_xclip.cli` codes)."""
    from ..cli import EXIT_FAILURES, EXIT_OK, EXIT_USAGE

    try:
        result = job()
    except (ValueError, ImportError) as err:  # another job's folder, a missing extra, bad options
        print(f"hf-xclip {command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # a worker that could not start (model, labels), a lost cluster: parts stay committed
        last = (str(err).strip().splitlines() or [""])[-1]
        print(
            f"hf-xclip {command}: error: the job stopped ({type(err).__name__}: {last}); the parts written so far "
            "are kept and the same command resumes",
            file=sys.stderr,
        )
        return EXIT_FAILURES
    failures = [*result.missing, *result.failed]
    for path, reason in failures:
        print(f"hf-xclip {command}: failed {path}: {reason}", file=sys.stderr)
    print(
        f"{result.output}: {result.written} video(s) written ({len(result.failed)} as error rows), "
        f"{result.skipped} already there, {result.total_videos} in all; {result.seconds:.1f} s"
    )
    return EXIT_FAILURES if failures else EXIT_OK


__all__ = ["add_engine_arguments", "engine_options", "report_job"]
