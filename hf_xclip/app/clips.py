"""The generated clips the app offers next to an upload: a few single-action clips of the embedded model's world
(`hf_xclip.data.synthetic`, seen and held-out combinations), one clip of several objects, and a sequence of four
actions for the timeline; written once as mp4 files when the app starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Clips are written at this size and rate (the processor resizes; a browser shows them large enough).
CLIP_SIZE, CLIP_FPS = 128, 8


@dataclass(frozen=True)
class DemoClip:
    """A generated clip: ``name`` (what the page lists), its mp4 ``path``, the ``labels`` it shows (the truth) and
    the candidate ``choices`` offered with it."""

    name: str
    path: Path
    labels: tuple[str, ...]
    choices: tuple[str, ...]


def single_action_specs(count: int, seed: int = 0):
    """`count` combinations of different colours, alternating seen / held-out (zero-shot) ones."""
    from ..data.synthetic import heldout_specs, train_specs

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(301,)))
    pools = [train_specs(), heldout_specs()]
    chosen, colours = [], set()
    for index in range(count):
        pool = [spec for spec in pools[index % 2] if spec.colour not in colours] or pools[index % 2]
        spec = pool[int(rng.integers(len(pool)))]
        chosen.append(spec)
        colours.add(spec.colour)
    return chosen


def write_demo_clips(out_dir: str | Path, num_clips: int = 4, seed: int = 0, seconds: float = 4.0) -> list[DemoClip]:
    """Write the demo clips into `out_dir`: `num_clips` single actions of `seconds` each (their candidate labels:
    every clip's caption, so each clip is classified among the others' captions too), a clip of several objects
    and a sequence of four actions of 3-5 s (for the timeline; its labels are the four captions)."""
    from ..data.synthetic import (
        distinct_colour_specs,
        render_scene,
        render_sequence,
        render_video,
        sample_scenes,
    )
    from ..data.video_writer import write_video

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames_per_clip = max(1, round(seconds * CLIP_FPS))
    specs = single_action_specs(num_clips, seed)
    captions = tuple(spec.caption for spec in specs)
    clips = []
    for index, spec in enumerate(specs):
        frames = render_video(
            spec, num_frames=frames_per_clip, size=CLIP_SIZE, seed=np.random.SeedSequence(seed, spawn_key=(302, index))
        )
        name = f"{index:02d} {spec.caption}{' (held-out)' if spec.is_heldout else ''}"
        path = write_video(out_dir / f"clip_{index:02d}.mp4", frames, fps=CLIP_FPS, crf=18)
        clips.append(DemoClip(name, path, (spec.caption,), captions))
    scene = sample_scenes(1, seed=seed)[0]
    frames = render_scene(
        scene, num_frames=frames_per_clip, size=CLIP_SIZE, seed=np.random.SeedSequence(seed, spawn_key=(303,))
    )
    path = write_video(out_dir / "scene.mp4", frames, fps=CLIP_FPS, crf=18)
    clips.append(
        DemoClip(
            f"{len(clips):02d} objects: " + ", ".join(scene.captions),
            path,
            tuple(scene.captions),
            tuple(sorted({*scene.captions, *captions})),
        )
    )
    actions = distinct_colour_specs(4, np.random.SeedSequence(seed, spawn_key=(304,)))
    durations = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(305,))).integers(3, 6, len(actions))
    frames, _ = render_sequence(actions, durations.tolist(), fps=CLIP_FPS, size=CLIP_SIZE, seed=seed)
    path = write_video(out_dir / "sequence.mp4", frames, fps=CLIP_FPS, crf=18)
    sequence = tuple(spec.caption for spec in actions)
    clips.append(
        DemoClip(f"{len(clips):02d} sequence of 4 actions ({int(durations.sum())} s)", path, sequence, sequence)
    )
    return clips
