"""Helpers shared by the bench/ scripts: model pairs on the same weights, interleaved timing, peak memory in a child
process, machine facts, tables and JSON.

Every comparison runs hf_xclip and transformers' X-CLIP in the same process on the same weights: a random
`transformers.XCLIPModel` is saved with `save_pretrained` and both models are loaded from that folder.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import transformers  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
REFERENCE_DIR = REPO.parent / "shared" / "reference"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class ModelSpec:
    """Sizes of an X-CLIP variant (the released B/32 and B/16 models, or a tiny one for smoke runs)."""

    name: str
    patch_size: int
    image_size: int = 224
    vision_width: int = 768
    vision_layers: int = 12
    text_width: int = 512
    text_layers: int = 12
    projection_dim: int = 512

    def transformers_config(self, num_frames: int) -> transformers.XCLIPConfig:
        """transformers' config with the original's head counts (width // 64) everywhere."""
        heads = max(1, self.projection_dim // 64)
        vision = dict(
            hidden_size=self.vision_width,
            intermediate_size=4 * self.vision_width,
            num_hidden_layers=self.vision_layers,
            num_attention_heads=max(1, self.vision_width // 64),
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_frames=num_frames,
            mit_hidden_size=self.projection_dim,
            mit_intermediate_size=4 * self.projection_dim,
            mit_num_hidden_layers=1,
            mit_num_attention_heads=heads,
        )
        text = dict(
            hidden_size=self.text_width,
            intermediate_size=4 * self.text_width,
            num_hidden_layers=self.text_layers,
            num_attention_heads=max(1, self.text_width // 64),
        )
        return transformers.XCLIPConfig(
            text_config=text,
            vision_config=vision,
            projection_dim=self.projection_dim,
            prompt_layers=2,
            prompt_num_attention_heads=heads,
        )


SPECS = {
    "B/32": ModelSpec("B/32", patch_size=32),
    "B/16": ModelSpec("B/16", patch_size=16),
    "tiny": ModelSpec(
        "tiny",
        patch_size=16,
        image_size=64,
        vision_width=64,
        vision_layers=2,
        text_width=64,
        text_layers=2,
        projection_dim=64,
    ),
}


def _byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (GPT-2 / CLIP convention)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def save_clip_tokenizer(out_dir: Path) -> tuple[transformers.CLIPTokenizer, str]:
    """A CLIPTokenizer saved in `out_dir` and where it came from: the real CLIP BPE of the reference folder when
    present, else a character-level vocabulary (same tokenizer class, more tokens per label)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_dir = REFERENCE_DIR / "clip-tokenizer"
    if (vocab_dir / "vocab.json").is_file() and (vocab_dir / "merges.txt").is_file():
        for name in ("vocab.json", "merges.txt"):
            (out_dir / name).write_bytes((vocab_dir / name).read_bytes())
        source = "CLIP BPE (reference)"
    else:
        chars = _byte_level_alphabet()
        vocab = {c: i for i, c in enumerate(chars)}
        vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
        vocab["<|startoftext|>"] = len(vocab)
        vocab["<|endoftext|>"] = len(vocab)
        (out_dir / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (out_dir / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        source = "character-level CLIP vocabulary (reference tokenizer absent)"
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(out_dir), model_max_length=77)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer, source


def quiet_transformers() -> None:
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def checkpoint_dir(spec: ModelSpec, num_frames: int, workdir: Path, seed: int = 0) -> Path:
    """Folder holding a random transformers X-CLIP of this size (created once per spec and frame count)."""
    path = workdir / f"{spec.name.replace('/', '')}-{num_frames}f"
    if not (path / "config.json").exists():
        torch.manual_seed(seed)
        transformers.XCLIPModel(spec.transformers_config(num_frames)).save_pretrained(path)
    return path


def original_init_checkpoint_dir(spec: ModelSpec, num_frames: int, workdir: Path, seed: int = 0) -> Path:
    """Folder holding a random hf_xclip `XClipModel` of this size, initialised as the original X-CLIP does.

    For numerical checks (ONNX export, GPU parity) rather than for comparisons with transformers: a random
    `transformers.XCLIPModel` starts with a prompt generator whose output is ~100x the norm of the text embedding
    it is added to, which makes its logits so ill-conditioned that torch float32 itself is ~1e-3 away from float64
    there (~2e-6 with this initialisation).
    """
    from hf_xclip import XClipConfig, XClipModel

    path = workdir / f"{spec.name.replace('/', '')}-{num_frames}f-original-init"
    if not (path / "config.json").exists():
        torch.manual_seed(seed)
        config = XClipConfig.from_dict(spec.transformers_config(num_frames).to_dict())
        XClipModel(config).save_pretrained(path)
    return path


def load_models(path: Path, device: str, dtype: torch.dtype, which: Iterable[str] = ("ours", "transformers")):
    """`{"ours": XClipModel, "transformers": XCLIPModel}` loaded from one folder, in eval mode, sdpa attention."""
    from hf_xclip import XClipModel

    classes = {"ours": XClipModel, "transformers": transformers.XCLIPModel}
    models = {}
    for name in which:
        model = classes[name].from_pretrained(path, attn_implementation="sdpa", dtype=dtype)
        models[name] = model.to(device).eval()
    return models


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(
    fns: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int,
    device: str,
    cpu_times: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Wall times (s) of each callable, run in alternating order round after round so that load from other
    processes hits every variant alike; the first `warmup` rounds are dropped. The process CPU time of each run
    goes into `cpu_times` when given (steadier than wall time on a shared machine)."""
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        for name in names if round_index % 2 == 0 else names[::-1]:
            synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name]()
            synchronize(device)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
                if cpu_times is not None:
                    cpu_times.setdefault(name, []).append(time.process_time() - start_cpu)
    return times


def time_once(fn: Callable[[], Any], device: str) -> float:
    return time_once_cpu(fn, device)[0]


def time_once_cpu(fn: Callable[[], Any], device: str) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    synchronize(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def matmul_peak(device: str, dtype: torch.dtype, seconds: float = 3.0) -> dict[str, float]:
    """Practical matmul peak of this machine for `dtype`: best-of-rounds GFLOP/s of a square matmul loop
    (`wall`) and, on CPU, GFLOP per second of process CPU time (`per_cpu_second`, one busy core's worth: steady
    when other jobs share the machine)."""
    size = 2048 if device == "cpu" else 8192
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    flops = 2 * size**3
    a @ b
    rates, cpu_rates = [], []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        elapsed, cpu = time_once_cpu(lambda: a @ b, device)
        rates.append(flops / elapsed / 1e9)
        cpu_rates.append(flops / cpu / 1e9 if cpu > 0 else float("nan"))
    peak = {"wall": max(rates)}
    if device == "cpu":
        peak["per_cpu_second"] = max(cpu_rates)
    return peak


def count_flops(fn: Callable[[], Any]) -> tuple[int, Any]:
    """(FLOPs, result) of one call; `torch.utils.flop_counter` counts matmuls, convolutions and attention."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        result = fn()
    return counter.get_total_flops(), result


def machine_info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    return info


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        match = re.search(r"Model name:\s*(.+)", out)
        if match:
            return match.group(1).strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------------------------------------------------- memory
def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB."""
    try:
        status = Path("/proc/self/status").read_text()
        current = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
        return current, peak
    except (OSError, AttributeError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return float("nan"), peak


def run_child(script: Path, payload: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run `script --child JSON` in a fresh interpreter and return the JSON it prints on its last line."""
    cmd = [sys.executable, str(script), "--child", json.dumps(payload)]
    # glibc: serve every block above 64 KiB with its own mmap and give it back on free, so that the process RSS
    # follows the memory actually in use (otherwise freed activations stay resident and hide the next peak).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"child {payload} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------- tables
@dataclass
class Row:
    """One comparison: seconds of ours and of transformers' X-CLIP (medians), speed-up = theirs / ours."""

    section: str
    case: str
    ours: float
    transformers: float
    unit: str = "s"
    runs: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """For times: transformers / ours (> 1 means we are faster). For memory: the same (> 1 means we use less)."""
        return self.transformers / self.ours if self.ours else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def format_value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def paired_ratio(times: dict[str, list[float]], ours: str = "ours", theirs: str = "transformers") -> float:
    """Median over rounds of theirs / ours, each pair run back to back (robust to slow drifts in machine load)."""
    pairs = [t / o for o, t in zip(times.get(ours, []), times.get(theirs, [])) if o > 0]
    return median(pairs) if pairs else float("nan")


def _notes(row: Row) -> str:
    skip = {"CPU-time ratio", "paired ratio"}
    return ", ".join(f"{k}={v}" for k, v in row.extra.items() if k not in skip and not isinstance(v, (list, dict)))


def markdown_table(rows: list[Row]) -> str:
    """Two markdown tables: times (speed-up = transformers / ours) and peak memory (ratio = transformers / ours)."""
    timed = [row for row in rows if row.unit == "s"]
    memory = [row for row in rows if row.unit != "s"]
    lines = []
    if timed:
        lines += [
            "| section | case | hf_xclip | transformers | speed-up (wall, medians) | speed-up (paired) "
            "| speed-up (CPU time) | runs | notes |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in timed:
            paired = row.extra.get("paired ratio")
            cpu = row.extra.get("CPU-time ratio")
            lines.append(
                f"| {row.section} | {row.case} | {format_value(row.ours, row.unit)} | "
                f"{format_value(row.transformers, row.unit)} | **{row.ratio:.2f}x** | "
                f"{f'{paired:.2f}x' if paired else '-'} | {cpu or '-'} | {row.runs} | {_notes(row)} |"
            )
    if memory:
        lines += [
            "",
            "| section | case | hf_xclip | transformers | transformers / ours | notes |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for row in memory:
            lines.append(
                f"| {row.section} | {row.case} | {format_value(row.ours, row.unit)} | "
                f"{format_value(row.transformers, row.unit)} | {row.ratio:.2f}x | {_notes(row)} |"
            )
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
