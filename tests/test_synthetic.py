"""Tests of the procedural video-text data (hf_xclip.data.synthetic) and its word-level tokenizer."""

import itertools

import numpy as np
import pytest
import torch

from hf_xclip.data.synthetic import (
    COLOURS,
    EOT_TOKEN,
    HELDOUT_COLOUR_MOTIONS,
    HELDOUT_COLOUR_SHAPES,
    MOTIONS,
    PROMPT_TEMPLATES,
    SHAPES,
    SOT_TOKEN,
    SyntheticVideoDataset,
    SyntheticVideoSpec,
    all_specs,
    build_synthetic_tokenizer,
    heldout_specs,
    render_video,
    specs_for_split,
    train_specs,
    write_video_folder,
)

SIZE = 64
FRAMES = 8


def shape_mask(spec: SyntheticVideoSpec, seed: int, **kwargs) -> np.ndarray:
    """(T, H, W) bool mask of the shape, from the plain-background clip (same geometry as the noisy one)."""
    frames = render_video(spec, num_frames=kwargs.get("num_frames", FRAMES), size=SIZE, seed=seed, background="plain")
    return frames.max(axis=-1) > 127


def centroids(mask: np.ndarray) -> np.ndarray:
    """(T, 2) centre of mass (x, y) in pixels of each frame's mask."""
    ys, xs = np.mgrid[: mask.shape[1], : mask.shape[2]]
    area = mask.sum(axis=(1, 2))
    assert (area > 0).all(), "the shape vanished from a frame"
    return np.stack([(mask * xs).sum(axis=(1, 2)) / area, (mask * ys).sum(axis=(1, 2)) / area], axis=1)


# Rotational symmetry order of each polygonal shape.
SYMMETRY = {"triangle": 3, "square": 4, "cross": 4, "star": 5}


def rotation_steps(coverage: np.ndarray, centre: np.ndarray, order: int) -> np.ndarray:
    """(T-1,) rotation in degrees between consecutive frames (counter-clockwise positive).

    The complex moment ``sum(coverage * (x + iy)^order)`` about the centroid of a shape with ``order``-fold symmetry
    turns by ``order`` times the shape's rotation, which makes the estimate unambiguous within +-180/order degrees.
    """
    ys, xs = np.mgrid[: coverage.shape[1], : coverage.shape[2]] + 0.5
    moments = np.array(
        [(weight * ((xs - cx) + 1j * (cy - ys)) ** order).sum() for weight, (cx, cy) in zip(coverage, centre + 0.5)]
    )
    return np.degrees(np.angle(moments[1:] / moments[:-1])) / order


# ------------------------------------------------------------------------------------------------ specs and split


def test_caption_format_and_parsing():
    spec = SyntheticVideoSpec("circle", "red", "moving left")
    assert spec.caption == "a red circle moving left"
    for spec in all_specs():
        assert spec.caption == f"a {spec.colour} {spec.shape} {spec.motion}"
        assert SyntheticVideoSpec.from_caption(spec.caption) == spec
    assert SyntheticVideoSpec.from_caption("  A Blue Star Rotating ") == SyntheticVideoSpec("star", "blue", "rotating")
    assert len({spec.caption for spec in all_specs()}) == len(all_specs())


@pytest.mark.parametrize(
    "args, message",
    [
        (("hexagon", "red", "growing"), "unknown shape"),
        (("circle", "pink", "growing"), "unknown colour"),
        (("circle", "red", "jumping"), "unknown motion"),
        (("circle", "red", "rotating"), "not a valid combination"),
    ],
)
def test_invalid_specs_are_rejected(args, message):
    with pytest.raises(ValueError, match=message):
        SyntheticVideoSpec(*args)


def test_from_caption_rejects_other_text():
    with pytest.raises(ValueError, match="not a synthetic caption"):
        SyntheticVideoSpec.from_caption("a dog playing")


def test_split_is_disjoint_and_covers_every_attribute():
    train, heldout = train_specs(), heldout_specs()
    assert set(train).isdisjoint(heldout)
    assert set(train) | set(heldout) == set(all_specs())
    assert len(all_specs()) == len(SHAPES) * len(COLOURS) * len(MOTIONS) - len(COLOURS)  # no rotating circles
    assert train and heldout
    # Every attribute, and every shape-motion pair, is seen in training.
    assert {s.shape for s in train} == set(SHAPES)
    assert {s.colour for s in train} == set(COLOURS)
    assert {s.motion for s in train} == set(MOTIONS)
    assert {(s.shape, s.motion) for s in train} == {(s.shape, s.motion) for s in all_specs()}
    # The held-out pairings never occur in training, and each held-out clip has one of them.
    train_colour_motions = {(s.colour, s.motion) for s in train}
    train_colour_shapes = {(s.colour, s.shape) for s in train}
    assert HELDOUT_COLOUR_MOTIONS.isdisjoint(train_colour_motions)
    assert HELDOUT_COLOUR_SHAPES.isdisjoint(train_colour_shapes)
    for spec in heldout:
        assert (spec.colour, spec.motion) not in train_colour_motions or (
            spec.colour,
            spec.shape,
        ) not in train_colour_shapes
    assert specs_for_split("train") == train and specs_for_split("heldout") == heldout
    with pytest.raises(ValueError, match="unknown split"):
        specs_for_split("test")


# ------------------------------------------------------------------------------------------------ rendering


@pytest.mark.parametrize("size, num_frames", [(64, 8), ((48, 80), 5), (96, 16), (32, 1)])
def test_render_shape_dtype_and_determinism(size, num_frames):
    spec = SyntheticVideoSpec("star", "yellow", "moving right")
    video = render_video(spec, num_frames=num_frames, size=size, seed=7)
    height, width = (size, size) if isinstance(size, int) else size
    assert video.shape == (num_frames, height, width, 3) and video.dtype == np.uint8
    np.testing.assert_array_equal(video, render_video(spec, num_frames=num_frames, size=size, seed=7))
    assert not np.array_equal(video, render_video(spec, num_frames=num_frames, size=size, seed=8))


def test_render_rejects_bad_arguments():
    spec = SyntheticVideoSpec("square", "red", "growing")
    with pytest.raises(ValueError, match="num_frames"):
        render_video(spec, num_frames=0)
    with pytest.raises(ValueError, match="at least 8x8"):
        render_video(spec, size=4)
    with pytest.raises(ValueError, match="background"):
        render_video(spec, background="stripes")
    with pytest.raises(TypeError, match="SyntheticVideoSpec"):
        render_video("a red square growing")


def test_backgrounds_are_random_per_video():
    spec = SyntheticVideoSpec("circle", "green", "growing")
    first_frames = [render_video(spec, seed=seed)[0].astype(float) for seed in range(4)]
    means = [frame.mean(axis=(0, 1)) for frame in first_frames]
    assert min(np.abs(a - b).max() for a, b in itertools.combinations(means, 2)) > 1.0
    assert all(frame.std() > 5 for frame in first_frames)  # textured, not flat


@pytest.mark.parametrize("shape, motion", sorted({(spec.shape, spec.motion) for spec in all_specs()}))
def test_motions_are_visible(shape, motion):
    spec = SyntheticVideoSpec(shape, "white", motion)
    for seed in range(3):
        mask = shape_mask(spec, seed)
        centre = centroids(mask)
        area = mask.sum(axis=(1, 2)).astype(float)
        step = np.diff(centre, axis=0)
        if motion.startswith("moving"):
            axis, sign = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}[motion.split()[1]]
            assert (sign * step[:, axis] > 0).all(), f"{spec.caption}: centroid not monotonic {centre[:, axis]}"
            assert sign * (centre[-1, axis] - centre[0, axis]) > 0.3 * SIZE
            assert np.abs(centre[:, 1 - axis] - centre[0, 1 - axis]).max() < 0.1 * SIZE
            assert area.max() < 1.3 * area.min()  # stays in the frame
        elif motion in ("growing", "shrinking"):
            ratio = area[1:] / area[:-1]
            assert ((ratio > 1) if motion == "growing" else (ratio < 1)).all(), f"{spec.caption}: areas {area}"
            assert max(area[0], area[-1]) > 6 * min(area[0], area[-1])
        else:  # rotating: stays in place with the same area, turning steadily one way
            assert np.abs(centre - centre.mean(axis=0)).max() < 0.06 * SIZE
            assert area.max() < 1.25 * area.min()
            coverage = render_video(spec, num_frames=FRAMES, size=SIZE, seed=seed, background="plain").max(-1) / 255
            steps = rotation_steps(coverage, centre, SYMMETRY[shape])
            assert (np.abs(steps) >= 5).all() and len(set(np.sign(steps))) == 1, f"{spec.caption}: steps {steps}"
            assert abs(steps.sum()) > 50


def test_colours_are_recognisable_on_noisy_backgrounds():
    nominal = np.array(list(COLOURS.values()), dtype=float)
    for index, spec in enumerate(all_specs()[::5]):
        mask = shape_mask(spec, seed=index)
        video = render_video(spec, num_frames=FRAMES, size=SIZE, seed=index).astype(float)
        inside = np.median(video[mask], axis=0)
        nearest = list(COLOURS)[int(np.argmin(np.linalg.norm(nominal - inside, axis=1)))]
        assert nearest == spec.colour, f"{spec.caption} looks {nearest} ({inside})"
        ring = (~mask) & np.roll(mask, 4, axis=2)
        if ring.any():
            assert np.linalg.norm(np.median(video[ring], axis=0) - inside) > 60, f"{spec.caption}: low contrast"


# ------------------------------------------------------------------------------------------------ dataset and files


def test_dataset_items_labels_and_determinism():
    dataset = SyntheticVideoDataset("heldout", num_videos=150, seed=3, num_frames=4, size=32)
    assert len(dataset) == 150 and dataset.specs == heldout_specs()
    counts = np.bincount(dataset.labels, minlength=len(dataset.specs))
    assert counts.max() - counts.min() <= 1  # balanced
    item = dataset[5]
    assert item["frames"].shape == (4, 32, 32, 3) and item["frames"].dtype == np.uint8
    assert item["caption"] == dataset.captions[item["label"]] == dataset.specs[item["label"]].caption
    again = SyntheticVideoDataset("heldout", num_videos=150, seed=3, num_frames=4, size=32)
    np.testing.assert_array_equal(item["frames"], again[5]["frames"])
    assert not np.array_equal(dataset[5]["frames"], dataset[6]["frames"])
    frames, labels = dataset.render_all()
    assert frames.shape == (150, 4, 32, 32, 3) and labels.dtype == np.int64
    np.testing.assert_array_equal(frames[5], item["frames"])
    with pytest.raises(IndexError):
        dataset[150]


def test_dataset_with_dataloader_and_transform():
    to_tensor = lambda frames: torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    dataset = SyntheticVideoDataset("train", num_videos=6, size=32, num_frames=4, transform=to_tensor)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert batch["frames"].shape == (3, 4, 3, 32, 32) and batch["frames"].dtype == torch.float32
    assert batch["label"].tolist() == dataset.labels[:3].tolist()
    assert len(batch["caption"]) == 3
    explicit = SyntheticVideoDataset(specs=[SyntheticVideoSpec("cross", "blue", "growing")], num_videos=2)
    assert explicit.captions == ["a blue cross growing"] and len(explicit) == 2
    with pytest.raises(ValueError, match="at least one class"):
        SyntheticVideoDataset(specs=[])


def test_write_video_folder_round_trip(tmp_path):
    av = pytest.importorskip("av")
    specs = [SyntheticVideoSpec("square", "red", "moving right"), SyntheticVideoSpec("star", "blue", "shrinking")]
    written = write_video_folder(tmp_path, 2, specs=specs, num_frames=6, size=48, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(spec.caption for spec in specs)
    assert all(len(paths) == 2 and all(p.parent.name == caption for p in paths) for caption, paths in written.items())
    path = written["a red square moving right"][0]
    with av.open(str(path)) as container:
        decoded = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert decoded.shape == (6, 48, 48, 3)
    # Lossy but close to what was rendered: colours and positions survive the encoding.
    red = (decoded[..., 0].astype(int) - decoded[..., 1:].max(axis=-1)) > 100
    assert centroids(red)[-1, 0] - centroids(red)[0, 0] > 0.3 * 48
    with pytest.raises(ValueError, match="videos_per_class"):
        write_video_folder(tmp_path, 0, specs=specs)


# ------------------------------------------------------------------------------------------------ tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    out_dir = tmp_path_factory.mktemp("synthetic_tokenizer")
    build_synthetic_tokenizer(out_dir, max_length=16)
    return AutoTokenizer.from_pretrained(out_dir)


def test_tokenizer_special_tokens_and_vocabulary(tokenizer):
    vocab = tokenizer.get_vocab()
    assert vocab[EOT_TOKEN] == len(vocab) - 1 == max(vocab.values())
    assert tokenizer.eos_token_id == vocab[EOT_TOKEN] and tokenizer.bos_token_id == vocab[SOT_TOKEN]
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert tokenizer.model_max_length == 16
    words = {word for spec in all_specs() for word in spec.caption.split()}
    words |= {word for template in PROMPT_TEMPLATES for word in template.format("").split()}
    assert words <= set(vocab)
    assert tokenizer.unk_token_id not in tokenizer("a video of a purple cross rotating")["input_ids"]


def test_tokenizer_round_trip_and_eos_pooling_position(tokenizer):
    texts = [template.format(spec.caption) for template in PROMPT_TEMPLATES for spec in all_specs()[::17]]
    batch = tokenizer(texts, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == (len(texts), 16)
    assert (ids[:, 0] == tokenizer.bos_token_id).all()
    eos_position = mask.sum(dim=1) - 1
    assert (ids.argmax(dim=1) == eos_position).all()  # argmax pooling finds the first EOT
    assert (ids[torch.arange(len(texts)), eos_position] == tokenizer.eos_token_id).all()
    decoded = tokenizer.batch_decode(ids, skip_special_tokens=True)
    assert decoded == texts
    # Case, punctuation and spacing are normalised away; unknown words become <|unk|>.
    assert tokenizer("A  RED circle, moving LEFT!")["input_ids"] == tokenizer("a red circle moving left")["input_ids"]
    assert tokenizer("a zebra")["input_ids"][2] == tokenizer.unk_token_id
    long = tokenizer(" ".join(["red"] * 40), truncation=True)["input_ids"]
    assert len(long) == 16 and long[-1] == tokenizer.eos_token_id


# ---------------------------------------------------------------------------------------------------------------
# Multi-object scenes (the multi-label set)


def test_scenes_are_deterministic_and_objects_differ_in_every_attribute():
    from hf_xclip.data.synthetic import sample_scenes

    scenes = sample_scenes(50, seed=3)
    assert scenes == sample_scenes(50, seed=3) and scenes != sample_scenes(50, seed=4)
    assert {len(scene.objects) for scene in scenes} == {2, 3}
    for scene in scenes:
        for attribute in ("shape", "colour", "motion"):
            values = [getattr(spec, attribute) for spec in scene.objects]
            assert len(set(values)) == len(values)
    mixed = sample_scenes(30, seed=0, require=[train_specs(), heldout_specs()])
    assert all(scene.objects[0] in train_specs() and scene.objects[1] in heldout_specs() for scene in mixed)
    only_base = sample_scenes(30, seed=0, specs=train_specs(), num_objects=(3, 3))
    assert all(len(s.objects) == 3 and all(o in train_specs() for o in s.objects) for s in only_base)


def test_scene_rejects_repeated_attributes_and_bad_arguments():
    from hf_xclip.data.synthetic import SyntheticScene, sample_scenes

    with pytest.raises(ValueError, match="differ in colour"):
        SyntheticScene((SyntheticVideoSpec("circle", "red", "growing"), SyntheticVideoSpec("star", "red", "moving up")))
    with pytest.raises(ValueError, match="at least one object"):
        SyntheticScene(())
    with pytest.raises(ValueError, match="num_objects"):
        sample_scenes(3, num_objects=(3, 2))


def test_base_and_novel_labels_split_the_captions():
    from hf_xclip.data.synthetic import base_labels, novel_labels

    base, novel = base_labels(), novel_labels()
    assert not set(base) & set(novel)
    assert sorted(base + novel) == sorted(spec.caption for spec in all_specs())
    assert novel == [spec.caption for spec in heldout_specs()]


def test_render_scene_draws_every_object_where_its_single_clip_would_move():
    from hf_xclip.data.synthetic import SyntheticScene, render_scene

    scene = SyntheticScene(
        (SyntheticVideoSpec("square", "red", "moving right"), SyntheticVideoSpec("circle", "blue", "moving down"))
    )
    frames = render_scene(scene, num_frames=FRAMES, size=SIZE, seed=5, background="plain")
    assert frames.shape == (FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, render_scene(scene, num_frames=FRAMES, size=SIZE, seed=5, background="plain"))
    noisy = render_scene(scene, num_frames=FRAMES, size=SIZE, seed=5)
    assert not np.array_equal(noisy, render_scene(scene, num_frames=FRAMES, size=SIZE, seed=6))
    red = (frames[..., 0] > 150) & (frames[..., 2] < 100)
    blue = (frames[..., 2] > 150) & (frames[..., 0] < 100)
    assert red.sum(axis=(1, 2)).min() > 10 and blue.sum(axis=(1, 2)).min() > 10  # both visible in every frame
    assert centroids(red)[-1, 0] > centroids(red)[0, 0] + 10  # the red square moves right
    assert centroids(blue)[-1, 1] > centroids(blue)[0, 1] + 10  # the blue circle moves down (image y grows)


def test_scene_dataset_targets_and_writer(tmp_path):
    import json

    from hf_xclip.data.folders import read_annotations
    from hf_xclip.data.synthetic import SyntheticSceneDataset, sample_scenes, write_scene_videos

    scenes = sample_scenes(4, seed=1)
    data = SyntheticSceneDataset(scenes, seed=2, num_frames=4, size=32)
    item = data[1]
    assert item["frames"].shape == (4, 32, 32, 3) and item["captions"] == scenes[1].captions
    assert [data.labels[k] for k in item["target"].nonzero().flatten().tolist()] == sorted(
        scenes[1].captions, key=data.labels.index
    )
    assert torch.equal(data.targets()[1], item["target"])
    with pytest.raises(ValueError, match="missing from `labels`"):
        SyntheticSceneDataset(scenes, labels=["a red circle growing"])
    path = write_scene_videos(tmp_path, scenes, num_frames=8, size=32)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["labels"] for line in lines] == [scene.captions for scene in scenes]
    folder = read_annotations(path)
    assert folder.multi_label and len(folder) == 4 and all(item.path.is_file() for item in folder.items)
