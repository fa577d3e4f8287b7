"""Where a job runs: `ENGINES` and `EngineOptions`, apart from `jobs` (which imports torch) so that the command
parsers (`hf_xclip.distributed.arguments`) stay light."""

from __future__ import annotations

from dataclasses import dataclass

# `--engine`: this process, or Ray Data workers.
ENGINES: tuple[str, ...] = ("local", "ray")


@dataclass
class EngineOptions:
    """Where and how wide a job runs.

    Attributes:
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data ``map_batches``).
        ray_address: a Ray cluster (``ray://host:10001`` or ``auto``); None starts a local Ray (``ray.init()``).
        num_workers: Ray actors, each holding one model (``concurrency``).
        num_gpus_per_worker: GPUs per actor (``num_gpus``; 0: CPU).
        num_cpus_per_worker: CPUs reserved per actor (its torch threads).
        videos_per_call: videos per ``__call__`` of a worker (Ray's ``batch_size``).
    """

    engine: str = "local"
    ray_address: str | None = None
    num_workers: int = 1
    num_gpus_per_worker: float = 0.0
    num_cpus_per_worker: float = 1.0
    videos_per_call: int = 4

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}.")
        if self.num_workers < 1 or self.videos_per_call < 1:
            raise ValueError("num_workers and videos_per_call must be at least 1.")
        if self.num_gpus_per_worker < 0 or self.num_cpus_per_worker <= 0:
            raise ValueError("num_gpus_per_worker must be >= 0 and num_cpus_per_worker > 0.")
