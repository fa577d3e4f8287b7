"""Procedurally generated video-text data: coloured shapes moving on noisy backgrounds.

This is the data the embedded default model is trained on, so that ``hf-xclip demo`` works on a machine with no
Hub access. Every clip shows one shape of one colour doing one motion, and its caption says exactly that, e.g.
``"a red circle moving left"``.

* :class:`SyntheticVideoSpec` names a combination (shape, colour, motion); :func:`all_specs`,
  :func:`train_specs` and :func:`heldout_specs` list them (see :data:`HELDOUT_COLOUR_MOTIONS` and
  :data:`HELDOUT_COLOUR_SHAPES` for the zero-shot split).
* :func:`render_video` draws one clip, ``uint8`` of shape ``(T, H, W, 3)``; the same seed gives bit-identical
  frames. Everything random about a clip (background texture, noise, start position, size, orientation, speed,
  jitter, exact colour) is drawn from that seed.
* :func:`render_sequence` draws several actions one after another with their true segments (for timelines);
  :func:`distinct_colour_specs` picks actions of different colours for it.
* :class:`SyntheticVideoDataset` is a torch ``Dataset`` of such clips; :func:`write_video_folder` writes clips as
  mp4 files in a folder-per-class layout (``root/<caption>/<index>.mp4``).
* Multi-label clips: a :class:`SyntheticScene` holds 2-3 objects, each its own shape, colour and motion, and its
  labels are the objects' captions; :func:`sample_scenes` draws scenes, :func:`render_scene` draws one,
  :class:`SyntheticSceneDataset` is a torch ``Dataset`` of them and :func:`write_scene_videos` writes mp4 files with
  a JSONL annotation file. The *base* / *novel* label split (:func:`base_labels`, :func:`novel_labels`) is the
  seen / held-out split of the combinations.
* :func:`build_synthetic_tokenizer` makes a small word-level tokenizer covering the captions and prompt templates.

Motions are made to read unambiguously from any handful of frames sampled across the clip (TSN sampling takes
the middle frame of T equal segments): a linear motion crosses 40-60 % of the frame, growing goes from small to
large (about 4x in radius), rotation turns a shape without rotational symmetry under the step between frames
(rotating circles are not a combination, a turning circle looks static).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
# sRGB values far apart from each other and from the (dark, desaturated) backgrounds.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (40, 200, 60),
    "blue": (45, 85, 240),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "purple": (180, 60, 230),
}
MOTIONS: tuple[str, ...] = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "growing",
    "shrinking",
    "rotating",
)
# A rotating circle is invisible, so that combination does not exist.
_INVALID_SHAPE_MOTIONS: frozenset[tuple[str, str]] = frozenset({("circle", "rotating")})

# Zero-shot split: a combination is held out when its (colour, motion) or its (colour, shape) pair is listed here.
# One pair of each kind per colour, each motion and each shape used at most once, so every colour, shape and motion
# (and every shape-motion pair) still appears in training, but these colour-motion / colour-shape pairings do not.
HELDOUT_COLOUR_MOTIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "moving up"),
        ("green", "growing"),
        ("blue", "moving left"),
        ("yellow", "shrinking"),
        ("white", "rotating"),
        ("purple", "moving right"),
    }
)
HELDOUT_COLOUR_SHAPES: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "triangle"),
        ("green", "star"),
        ("blue", "circle"),
        ("yellow", "cross"),
        ("white", "square"),
        ("purple", "star"),
    }
)

# Templates used when classifying: the tokenizer's vocabulary covers all of them.
PROMPT_TEMPLATES: tuple[str, ...] = (
    "{}",
    "a video of {}",
    "a video showing {}",
    "a clip of {}",
    "a photo of {}",
    "this is {}",
)

Split = Literal["train", "heldout", "all"]
Background = Literal["noise", "plain"]

SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
UNK_TOKEN = "<|unk|>"


@dataclass(frozen=True, order=True)
class SyntheticVideoSpec:
    """One class of synthetic clip: a ``shape`` of a ``colour`` doing a ``motion``.

    Args:
        shape: one of :data:`SHAPES`.
        colour: one of the keys of :data:`COLOURS`.
        motion: one of :data:`MOTIONS`.
    """

    shape: str
    colour: str
    motion: str

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {SHAPES}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; expected one of {tuple(COLOURS)}")
        if self.motion not in MOTIONS:
            raise ValueError(f"unknown motion {self.motion!r}; expected one of {MOTIONS}")
        if (self.shape, self.motion) in _INVALID_SHAPE_MOTIONS:
            raise ValueError(f"a {self.shape} {self.motion} is not a valid combination (it would look static)")

    @property
    def caption(self) -> str:
        """The class text, e.g. ``"a red circle moving left"``."""
        return f"a {self.colour} {self.shape} {self.motion}"

    @property
    def is_heldout(self) -> bool:
        """Whether this combination belongs to the zero-shot (held-out) split."""
        return (self.colour, self.motion) in HELDOUT_COLOUR_MOTIONS or (
            self.colour,
            self.shape,
        ) in HELDOUT_COLOUR_SHAPES

    @classmethod
    def from_caption(cls, caption: str) -> SyntheticVideoSpec:
        """Parse a caption written by :attr:`caption` (case and surrounding spaces are ignored)."""
        words = caption.strip().lower().split()
        if len(words) < 4 or words[0] != "a":
            raise ValueError(f"not a synthetic caption: {caption!r} (expected 'a <colour> <shape> <motion>')")
        return cls(shape=words[2], colour=words[1], motion=" ".join(words[3:]))


def all_specs() -> list[SyntheticVideoSpec]:
    """Every valid combination, in a fixed order (shape, then colour, then motion, as listed in the constants)."""
    return [
        SyntheticVideoSpec(shape, colour, motion)
        for shape in SHAPES
        for colour in COLOURS
        for motion in MOTIONS
        if (shape, motion) not in _INVALID_SHAPE_MOTIONS
    ]


def train_specs() -> list[SyntheticVideoSpec]:
    """Combinations seen in training (the complement of :func:`heldout_specs`)."""
    return [spec for spec in all_specs() if not spec.is_heldout]


def heldout_specs() -> list[SyntheticVideoSpec]:
    """Zero-shot combinations never seen in training: see :data:`HELDOUT_COLOUR_MOTIONS` / ``_SHAPES``."""
    return [spec for spec in all_specs() if spec.is_heldout]


def specs_for_split(split: Split) -> list[SyntheticVideoSpec]:
    """The combinations of ``"train"``, ``"heldout"`` or ``"all"``."""
    if split == "train":
        return train_specs()
    if split == "heldout":
        return heldout_specs()
    if split == "all":
        return all_specs()
    raise ValueError(f"unknown split {split!r}; expected 'train', 'heldout' or 'all'")


# ----------------------------------------------------------------------------------------------------------------
# Geometry. Shapes live in a unit frame (circumradius about 1, centred at the origin); a convex polygon's signed
# distance is approximated by the largest signed distance to its edge lines (exact inside, good enough near the
# boundary for anti-aliasing); unions take the minimum.


def _regular_polygon(num_vertices: int, radius: float, phase: float) -> np.ndarray:
    angles = phase + 2 * math.pi * np.arange(num_vertices) / num_vertices
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _edge_lines(vertices: np.ndarray) -> np.ndarray:
    """(K, 3) rows ``(nx, ny, offset)`` of the outward edge lines of a counter-clockwise convex polygon."""
    edges = np.roll(vertices, -1, axis=0) - vertices
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    offsets = (normals * vertices).sum(axis=1)
    return np.concatenate([normals, offsets[:, None]], axis=1).astype(np.float32)


def _star_pieces() -> list[np.ndarray]:
    outer = _regular_polygon(5, 1.0, math.pi / 2)
    inner = _regular_polygon(5, 0.42, math.pi / 2 + math.pi / 5)
    pieces = [_edge_lines(inner)]
    for k in range(5):
        pieces.append(_edge_lines(np.stack([inner[k - 1], outer[k], inner[k]])))
    return pieces


def _box(half_w: float, half_h: float) -> np.ndarray:
    return _edge_lines(np.array([[half_w, -half_h], [half_w, half_h], [-half_w, half_h], [-half_w, -half_h]]))


# Each polygonal shape is a union of convex pieces; the circle is handled analytically.
_SHAPE_PIECES: dict[str, list[np.ndarray]] = {
    "square": [_box(0.75, 0.75)],
    "triangle": [_edge_lines(_regular_polygon(3, 1.05, math.pi / 2))],
    "star": _star_pieces(),
    "cross": [_box(0.95, 0.3), _box(0.3, 0.95)],
}
_CIRCLE_RADIUS = 0.8


def _signed_distance(shape: str, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Approximate signed distance (unit-frame units, negative inside) of points ``(px, py)`` to ``shape``."""
    if shape == "circle":
        return np.sqrt(px * px + py * py) - np.float32(_CIRCLE_RADIUS)
    union: np.ndarray | None = None
    for lines in _SHAPE_PIECES[shape]:
        piece: np.ndarray | None = None
        for nx, ny, offset in lines:
            dist = nx * px + ny * py - offset
            piece = dist if piece is None else np.maximum(piece, dist, out=piece)
        if piece is None:  # every piece has at least one line
            raise ValueError(f"shape {shape!r} has an empty piece")
        union = piece if union is None else np.minimum(union, piece, out=union)
    if union is None:  # every non-circle shape has at least one piece
        raise ValueError(f"shape {shape!r} has no pieces")
    return union


# ----------------------------------------------------------------------------------------------------------------
# Rendering.


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) matrix of bilinear upsampling weights (align_corners=False)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = pos - low
    matrix = np.zeros((n_out, n_in), dtype=np.float32)
    matrix[np.arange(n_out), low] += 1 - frac
    matrix[np.arange(n_out), high] += frac
    return matrix


def _noise(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Zero-mean uniform noise with standard deviation ``std`` (uniform draws are ~4x faster than normal ones)."""
    noise = rng.random(shape, dtype=np.float32) - np.float32(0.5)
    noise *= np.float32(std * math.sqrt(12))
    return noise


def _background(rng: np.random.Generator, height: int, width: int, plain: bool) -> np.ndarray:
    """(H, W, 3) float32 background: dark, desaturated, with a smooth random texture and grain."""
    if plain:
        return np.zeros((height, width, 3), dtype=np.float32)
    base = rng.uniform(15, 80) + rng.uniform(-12, 12, size=3)
    grid = int(rng.integers(3, 9))
    coarse = rng.standard_normal((grid, grid, 3), dtype=np.float32) * np.float32(rng.uniform(8, 30))
    smooth = (_interp_matrix(height, grid) @ coarse.transpose(2, 0, 1) @ _interp_matrix(width, grid).T).transpose(
        1, 2, 0
    )
    grain = _noise(rng, (height, width, 3), rng.uniform(2, 10))
    return (base.astype(np.float32) + smooth + grain).astype(np.float32)


def _trajectory(
    spec: SyntheticVideoSpec, rng: np.random.Generator, times: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame centre x, centre y, radius (pixels) and angle (radians) of the shape."""
    scale = min(height, width)
    num = len(times)
    angle0 = rng.uniform(0, 2 * math.pi)
    angle = np.full(num, angle0)
    if spec.motion.startswith("moving"):
        radius = np.full(num, rng.uniform(0.1, 0.17) * scale)
        horizontal = spec.motion in ("moving left", "moving right")
        along_len, across_len = (width, height) if horizontal else (height, width)
        r = radius[0]
        travel = rng.uniform(0.4, 0.6) * along_len
        start = rng.uniform(r, max(r, along_len - r - travel))
        along = start + travel * times
        if spec.motion in ("moving left", "moving up"):
            along = along_len - along
        across = np.full(num, rng.uniform(r, across_len - r))
        cx, cy = (along, across) if horizontal else (across, along)
    else:
        if spec.motion == "rotating":
            radius = np.full(num, rng.uniform(0.18, 0.28) * scale)
            turn = rng.uniform(math.radians(60), math.radians(100)) * rng.choice([-1.0, 1.0])
            angle = angle0 + turn * times
            margin = radius[0] / scale
        else:
            small, large = rng.uniform(0.06, 0.09) * scale, rng.uniform(0.28, 0.36) * scale
            if spec.motion == "shrinking":
                small, large = large, small
            radius = small + (large - small) * times
            margin = 0.3
        cx = np.full(num, rng.uniform(margin, 1 - margin) * width)
        cy = np.full(num, rng.uniform(margin, 1 - margin) * height)
    jitter = rng.standard_normal((3, num)) * np.array([[0.01 * scale], [0.01 * scale], [0.02]])
    return cx + jitter[0], cy + jitter[1], radius * (1 + jitter[2]), angle


def _coverage(
    shape: str, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray, angle: np.ndarray, height: int, width: int
) -> np.ndarray:
    """(T, H, W, 1) float32 anti-aliased coverage of ``shape`` (per-frame centre, radius and angle as (T, 1, 1))."""
    ys = np.arange(height, dtype=np.float32).reshape(1, -1, 1) + np.float32(0.5)
    xs = np.arange(width, dtype=np.float32).reshape(1, 1, -1) + np.float32(0.5)
    dx, dy = (xs - cx) / radius, (cy - ys) / radius  # y axis pointing up in the unit frame
    cos, sin = np.cos(angle), np.sin(angle)
    px, py = cos * dx + sin * dy, cos * dy - sin * dx  # rotate points by -angle = rotate shape by +angle
    return np.clip(np.float32(0.5) - _signed_distance(shape, px, py) * radius, 0, 1)[..., None]


def _check_render_arguments(num_frames: int, size: int | tuple[int, int], background: str) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if height < 8 or width < 8:
        raise ValueError(f"frames must be at least 8x8 pixels, got {height}x{width}")
    if background not in ("noise", "plain"):
        raise ValueError(f"unknown background {background!r}; expected 'noise' or 'plain'")
    return height, width


def render_video(
    spec: SyntheticVideoSpec,
    *,
    num_frames: int = 8,
    size: int | tuple[int, int] = 64,
    seed: int | np.random.SeedSequence = 0,
    background: Background = "noise",
) -> np.ndarray:
    """Draw one clip of ``spec``.

    Args:
        spec: what the clip shows.
        num_frames: number of frames T; the motion spans the whole clip (frame 0 at its start, frame T-1 at its end).
        size: frame size, ``S`` for S x S frames or ``(H, W)``.
        seed: seeds everything random about the clip; the same seed (and arguments) gives bit-identical frames.
        background: ``"noise"`` (random texture and per-frame grain) or ``"plain"`` (black, no noise; for tests and
            figures).

    Returns:
        ``uint8`` array of shape ``(T, H, W, 3)`` (RGB).
    """
    if not isinstance(spec, SyntheticVideoSpec):
        raise TypeError(f"spec must be a SyntheticVideoSpec, got {type(spec).__name__}")
    height, width = _check_render_arguments(num_frames, size, background)
    plain = background == "plain"
    rng = np.random.default_rng(seed)
    times = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.array([0.5])

    # Geometry is drawn first, so a "plain" clip shows exactly where the shape of the same seed's "noise" clip is.
    trajectory = _trajectory(spec, rng, times, height, width)
    cx, cy, radius, angle = (a.astype(np.float32).reshape(-1, 1, 1) for a in trajectory)
    colour_jitter = rng.uniform(-20, 20, size=3).astype(np.float32)
    colour = np.asarray(COLOURS[spec.colour], dtype=np.float32)
    if not plain:
        colour = np.clip(colour + colour_jitter, 0, 255)
    canvas = _background(rng, height, width, plain)

    coverage = _coverage(spec.shape, cx, cy, radius, angle, height, width)

    frames = (colour - canvas)[None] * coverage
    frames += canvas
    if not plain:
        frames += _noise(rng, frames.shape, rng.uniform(1, 5))
    np.clip(frames, 0, 255, out=frames)
    frames += np.float32(0.5)  # round to nearest when truncating
    return frames.astype(np.uint8)


def distinct_colour_specs(count: int, seed: int | np.random.SeedSequence = 0) -> list[SyntheticVideoSpec]:
    """``count`` (at most one per colour) combinations of different colours, in a seeded order, each with a random
    shape and motion: actions that are told apart by colour at least (for sequences of actions, e.g.
    :func:`render_sequence`)."""
    if not 1 <= count <= len(COLOURS):
        raise ValueError(f"count must lie in [1, {len(COLOURS)}] (one action per colour), got {count}")
    rng = np.random.default_rng(seed)
    specs = []
    for colour in rng.permutation(list(COLOURS))[:count]:
        choices = [
            (shape, motion) for shape in SHAPES for motion in MOTIONS if (shape, motion) not in _INVALID_SHAPE_MOTIONS
        ]
        shape, motion = choices[rng.integers(len(choices))]
        specs.append(SyntheticVideoSpec(shape, str(colour), motion))
    return specs


def render_sequence(
    specs: Sequence[SyntheticVideoSpec],
    durations: Sequence[float],
    *,
    fps: int = 8,
    size: int | tuple[int, int] = 64,
    seed: int | np.random.SeedSequence = 0,
    background: Background = "noise",
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """A video of several actions one after another, with the truth: each spec rendered by :func:`render_video`
    over its duration (its motion spans its whole segment), the clips concatenated.

    Args:
        specs: the actions, in order.
        durations: seconds of each action; rounded to whole frames (at least one).
        fps: frame rate the durations are counted in (write the frames at this rate).
        size / background: as in :func:`render_video`.
        seed: seeds every clip (clip ``k`` from ``SeedSequence(seed, spawn_key=(k,))``).

    Returns:
        ``(frames, truth)``: ``uint8`` frames ``(N, H, W, 3)`` and ``[(caption, start, end), ...]`` in seconds, the
        segments tiling ``[0, N / fps)``.
    """
    if len(specs) != len(durations) or not specs:
        raise ValueError(
            f"give one duration per spec (at least one), got {len(specs)} specs, {len(durations)} durations"
        )
    if fps < 1:
        raise ValueError(f"fps must be at least 1, got {fps}")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    clips, truth, frame = [], [], 0
    for k, (spec, duration) in enumerate(zip(specs, durations)):
        count = max(1, round(duration * fps))
        child = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, k))
        clips.append(render_video(spec, num_frames=count, size=size, seed=child, background=background))
        truth.append((spec.caption, frame / fps, (frame + count) / fps))
        frame += count
    return np.concatenate(clips), truth


# ----------------------------------------------------------------------------------------------------------------
# Scenes: several objects in one clip (the multi-label set).


@dataclass(frozen=True)
class SyntheticScene:
    """A multi-label clip: several objects, each its own shape, colour and motion (no two objects share any of
    them), so every object's caption names it unambiguously. The labels of the clip are the objects' captions.

    Args:
        objects: the objects, drawn in this order (a later one covers an earlier one where they overlap).
    """

    objects: tuple[SyntheticVideoSpec, ...]

    def __post_init__(self) -> None:
        objects = tuple(self.objects)
        object.__setattr__(self, "objects", objects)
        if not objects:
            raise ValueError("a scene needs at least one object")
        for attribute in ("shape", "colour", "motion"):
            values = [getattr(spec, attribute) for spec in objects]
            if len(set(values)) != len(values):
                raise ValueError(f"objects of a scene must differ in {attribute}, got {values}")

    @property
    def captions(self) -> list[str]:
        """The clip's labels: one caption per object, in drawing order."""
        return [spec.caption for spec in self.objects]


def base_labels() -> list[str]:
    """Labels of the multi-label set's *base* split: captions of the combinations the default model was trained on
    (:func:`train_specs`). Multi-label fine-tuning sees only these."""
    return [spec.caption for spec in train_specs()]


def novel_labels() -> list[str]:
    """Labels of the *novel* split: captions of the held-out combinations (:func:`heldout_specs`), never trained on;
    evaluating them measures open-vocabulary recognition."""
    return [spec.caption for spec in heldout_specs()]


def sample_scenes(
    num_scenes: int,
    seed: int = 0,
    *,
    specs: Sequence[SyntheticVideoSpec] | None = None,
    num_objects: tuple[int, int] = (2, 3),
    require: Sequence[Sequence[SyntheticVideoSpec]] = (),
) -> list[SyntheticScene]:
    """``num_scenes`` random scenes (deterministic in ``seed``) of objects drawn from ``specs`` (default: every
    combination).

    Args:
        num_objects: (fewest, most) objects per scene, drawn uniformly.
        require: groups of combinations; every scene takes its first objects from these groups, one from each (e.g.
            ``[train_specs(), heldout_specs()]`` for scenes holding at least one base and one novel object), the
            rest from ``specs``.
    """
    low, high = num_objects
    if not 1 <= low <= high:
        raise ValueError(f"num_objects must be (fewest, most) with 1 <= fewest <= most, got {num_objects}")
    if len(require) > high:
        raise ValueError(f"{len(require)} required groups do not fit in scenes of at most {high} objects")
    pool = list(specs) if specs is not None else all_specs()
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    scenes = []
    for _ in range(num_scenes):
        count = max(int(rng.integers(low, high + 1)), len(require))
        chosen: list[SyntheticVideoSpec] = []
        for group in [*require, *([pool] * (count - len(require)))]:
            free = [
                s
                for s in group
                if all(s.shape != c.shape and s.colour != c.colour and s.motion != c.motion for c in chosen)
            ]
            if not free:
                raise ValueError("cannot draw objects that differ in shape, colour and motion from these combinations")
            chosen.append(free[int(rng.integers(len(free)))])
        scenes.append(SyntheticScene(tuple(chosen)))
    return scenes


def render_scene(
    scene: SyntheticScene,
    *,
    num_frames: int = 8,
    size: int | tuple[int, int] = 64,
    seed: int | np.random.SeedSequence = 0,
    background: Background = "noise",
) -> np.ndarray:
    """Draw a clip of every object of ``scene`` on one background, each moving as :func:`render_video` moves it.

    Objects keep the sizes and motions of single-object clips. Larger objects (by their largest radius) are drawn
    first so that small ones stay visible; starting positions are redrawn (a few times) to keep the objects' centres
    apart at mid-clip.

    Returns:
        ``uint8`` array ``(T, H, W, 3)``; the same seed gives bit-identical frames.
    """
    if not isinstance(scene, SyntheticScene):
        raise TypeError(f"scene must be a SyntheticScene, got {type(scene).__name__}")
    height, width = _check_render_arguments(num_frames, size, background)
    plain = background == "plain"
    rng = np.random.default_rng(seed)
    times = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.array([0.5])
    middle = len(times) // 2
    placed: list[tuple[np.ndarray, Any, tuple[Any, np.ndarray]]] = []
    for spec in scene.objects:
        for _ in range(8):
            trajectory = _trajectory(spec, rng, times, height, width)
            centre = np.array([trajectory[0][middle], trajectory[1][middle]])
            if all(np.linalg.norm(centre - other) > 0.3 * min(height, width) for other, _, _ in placed):
                break
        colour = np.asarray(COLOURS[spec.colour], dtype=np.float32)
        if not plain:
            colour = np.clip(colour + rng.uniform(-20, 20, size=3).astype(np.float32), 0, 255)
        placed.append((centre, trajectory, (spec, colour)))
    canvas = _background(rng, height, width, plain)
    frames = np.broadcast_to(canvas, (len(times), height, width, 3)).copy()
    for _, trajectory, (spec, colour) in sorted(placed, key=lambda item: -float(np.max(item[1][2]))):
        cx, cy, radius, angle = (a.astype(np.float32).reshape(-1, 1, 1) for a in trajectory)
        frames += (colour - frames) * _coverage(spec.shape, cx, cy, radius, angle, height, width)
    if not plain:
        frames += _noise(rng, frames.shape, rng.uniform(1, 5))
    np.clip(frames, 0, 255, out=frames)
    frames += np.float32(0.5)
    return frames.astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------
# Datasets and files.


__all__ = [
    "SHAPES",
    "COLOURS",
    "MOTIONS",
    "HELDOUT_COLOUR_MOTIONS",
    "HELDOUT_COLOUR_SHAPES",
    "PROMPT_TEMPLATES",
    "Split",
    "Background",
    "SOT_TOKEN",
    "EOT_TOKEN",
    "UNK_TOKEN",
    "SyntheticVideoSpec",
    "all_specs",
    "train_specs",
    "heldout_specs",
    "specs_for_split",
    "render_video",
    "distinct_colour_specs",
    "render_sequence",
    "SyntheticScene",
    "base_labels",
    "novel_labels",
    "sample_scenes",
    "render_scene",
]
