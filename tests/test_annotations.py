"""Annotation files (`hf_xclip.data.folders.read_annotations`): JSONL and CSV, multi- and single-label, clips of longer
videos (`start` / `end`), errors that name the file and the line, and the multi-label shot selection and split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_xclip import XClipVideoProcessor
from hf_xclip.data import write_video
from hf_xclip.data.clip_dataset import VideoClassificationDataset, collate_videos
from hf_xclip.data.folders import (
    AnnotationError,
    VideoItem,
    read_annotations,
    select_shots,
    split_heldout,
)
from hf_xclip.video_io import clip_frame_range


def _frames(value: int, count: int = 8) -> np.ndarray:
    return np.full((count, 32, 32, 3), value, dtype=np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """videos/a.mp4, videos/b.mp4, videos/c.mp4 (8 frames each, one grey level each) and long.mp4: 3 s at 8 fps whose
    frames 0-7, 8-15, 16-23 are grey levels 40, 140, 240."""
    path = tmp_path_factory.mktemp("annotated")
    (path / "videos").mkdir()
    for name, value in (("a", 20), ("b", 120), ("c", 220)):
        write_video(path / "videos" / f"{name}.mp4", _frames(value), fps=8, crf=0)
    long = np.concatenate([_frames(40), _frames(140), _frames(240)])
    write_video(path / "long.mp4", long, fps=8, crf=0)
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, records: list) -> Path:
    return _write(path, "\n".join(json.dumps(r) if not isinstance(r, str) else r for r in records) + "\n")


def test_jsonl_multi_label_relative_paths_and_sorted_classes(root):
    path = _jsonl(
        root / "train.jsonl",
        [
            {"video": "videos/a.mp4", "labels": ["dog", "cat"]},
            "",
            {"video": str(root / "videos" / "b.mp4"), "labels": ["bird"]},
            {"video": "videos/c.mp4", "labels": [" cat "], "start": 0.5, "end": 1},
        ],
    )
    folder = read_annotations(path)
    assert folder.multi_label and folder.root == path
    assert folder.class_names == ["bird", "cat", "dog"]
    assert [item.path for item in folder.items] == [root / "videos" / f"{n}.mp4" for n in "abc"]
    assert [item.labels for item in folder.items] == [(2, 1), (0,), (1,)]
    assert folder.items[0].label == 2 and folder.items[2].start == 0.5 and folder.items[2].end == 1.0
    assert folder.items[2].is_clip and not folder.items[0].is_clip
    assert folder.counts() == {"bird": 1, "cat": 2, "dog": 1}
    torch.testing.assert_close(folder.targets(), torch.tensor([[0.0, 1, 1], [1, 0, 0], [0, 1, 0]]))
    # fixing the classes (e.g. an adapter's) keeps their order
    fixed = read_annotations(path, class_names=["dog", "cat", "bird", "fish"])
    assert fixed.items[0].labels == (0, 1) and fixed.class_names[-1] == "fish"


def test_csv_multi_label_and_single_label(root):
    path = _write(root / "train.csv", "video,labels,start,end\nvideos/a.mp4,dog; cat,,\nvideos/b.mp4,bird,1,2.5\n")
    folder = read_annotations(path)
    assert folder.multi_label and folder.class_names == ["bird", "cat", "dog"]
    assert folder.items[0].labels == (2, 1) and folder.items[0].start is None
    assert (folder.items[1].start, folder.items[1].end) == (1.0, 2.5)
    single = read_annotations(_write(root / "single.csv", "label,video\ndog,videos/a.mp4\ncat,videos/b.mp4\n"))
    assert not single.multi_label and [item.labels for item in single.items] == [(1,), (0,)]
    single_jsonl = read_annotations(_jsonl(root / "single.jsonl", [{"video": "videos/a.mp4", "label": "dog"}]))
    assert not single_jsonl.multi_label and single_jsonl.class_names == ["dog"]


@pytest.mark.parametrize(
    "lines, line, message",
    [
        (
            [{"video": "videos/a.mp4", "labels": ["x"]}, {"video": "videos/missing.mp4", "labels": ["x"]}],
            2,
            "missing.mp4 not found",
        ),
        ([{"video": "videos/a.mp4", "labels": []}], 1, "empty label list"),
        ([{"video": "videos/a.mp4", "labels": ["x", ""]}], 1, "empty label"),
        ([{"video": "videos/a.mp4", "labels": ["x", "x"]}], 1, "duplicate"),
        ([{"video": "videos/a.mp4", "labels": ["x"], "tags": 1}], 1, r"unknown key\(s\) \['tags'\]"),
        ([{"video": "videos/a.mp4", "labels": "x"}], 1, "must be a list"),
        ([{"video": "videos/a.mp4"}], 1, "exactly one of 'labels'"),
        ([{"labels": ["x"]}], 1, "'video' must be a non-empty path"),
        (
            [
                '{"video": "videos/a.mp4", "labels": ["x"]',
            ],
            1,
            "not valid JSON",
        ),
        (["[1, 2]"], 1, "expected a JSON object"),
        ([{"video": "videos/a.mp4", "labels": ["x"], "start": 2, "end": 1}], 1, "must be after 'start'"),
        ([{"video": "videos/a.mp4", "labels": ["x"], "start": -1}], 1, "non-negative"),
        ([{"video": "videos/a.mp4", "labels": ["x"], "end": "soon"}], 1, "number of seconds"),
        ([{"video": "videos/a.mp4", "labels": ["x"]}, {"video": "videos/b.mp4", "label": "y"}], 2, "mixes"),
    ],
)
def test_jsonl_errors_name_the_file_and_line(root, tmp_path, lines, line, message):
    path = _jsonl(tmp_path / "bad.jsonl", lines)
    (tmp_path / "videos").symlink_to(root / "videos")
    with pytest.raises(AnnotationError, match=rf"bad\.jsonl, line {line}: .*{message}"):
        read_annotations(path)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("video,labels,split\nvideos/a.mp4,x,train\n", 1, r"unknown column\(s\) \['split'\]"),
        ("video,tags\nvideos/a.mp4,x\n", 1, r"unknown column"),
        ("video\nvideos/a.mp4\n", 1, "needs a 'video' column and one of"),
        ("video,labels\nvideos/a.mp4,x\nvideos/a.mp4,\n", 3, "empty label list"),
        ("video,labels\nvideos/a.mp4,x;;y\n", 2, "empty label"),
        ("video,labels\nvideos/a.mp4,x,extra\n", 2, "3 fields for 2 columns"),
        ("video,labels\nvideos/a.mp4,x\nvideos/nope.mp4,y\n", 3, "nope.mp4 not found"),
        ("", 1, "empty CSV"),
    ],
)
def test_csv_errors_name_the_file_and_line(root, tmp_path, text, line, message):
    (tmp_path / "videos").symlink_to(root / "videos")
    with pytest.raises(AnnotationError, match=rf"bad\.csv, line {line}: .*{message}"):
        read_annotations(_write(tmp_path / "bad.csv", text))


def test_every_problem_is_reported_and_other_errors(root, tmp_path):
    path = _jsonl(tmp_path / "bad.jsonl", [{"video": f"videos/missing{i}.mp4", "labels": ["x"]} for i in range(25)])
    with pytest.raises(AnnotationError) as info:
        read_annotations(path)
    message = str(info.value)
    assert "line 1:" in message and "line 20:" in message and "and 5 more problem(s)" in message
    with pytest.raises(FileNotFoundError, match="annotation file"):
        read_annotations(tmp_path / "absent.jsonl")
    with pytest.raises(AnnotationError, match="unknown annotation format '.txt'"):
        read_annotations(_write(tmp_path / "notes.txt", "x"))
    with pytest.raises(AnnotationError, match="no annotations"):
        read_annotations(_write(tmp_path / "empty.jsonl", "\n\n"))
    known = _jsonl(root / "known.jsonl", [{"video": "videos/a.mp4", "labels": ["dog", "unicorn"]}])
    with pytest.raises(AnnotationError, match=r"known\.jsonl, line 1: label\(s\) \['unicorn'\] not among"):
        read_annotations(known, class_names=["dog", "cat"])


def test_clip_frame_range():
    assert clip_frame_range(24, 8.0, None, None) == (0, 24)
    assert clip_frame_range(24, 8.0, 1.0, 2.0) == (8, 16)
    assert clip_frame_range(24, 8.0, 1.0, None) == (8, 24)
    assert clip_frame_range(24, 8.0, 2.5, 99.0) == (20, 24)  # cut at the end
    assert clip_frame_range(24, 8.0, 1.01, 1.02) == (9, 10)  # shorter than a frame: one frame
    with pytest.raises(ValueError, match="after the end of the video"):
        clip_frame_range(24, 8.0, 3.0, 4.0)
    with pytest.raises(ValueError, match="no frame rate"):
        clip_frame_range(24, None, 1.0, 2.0)


def test_dataset_reads_only_the_clip_and_gives_multi_hot_targets(root):
    path = _jsonl(
        root / "clips.jsonl",
        [
            {"video": "long.mp4", "labels": ["first"], "end": 1},
            {"video": "long.mp4", "labels": ["second", "middle"], "start": 1, "end": 2},
            {"video": "long.mp4", "labels": ["third"], "start": 2},
        ],
    )
    folder = read_annotations(path)
    processor = XClipVideoProcessor(crop_size=32, num_frames=4, size={"shortest_edge": 32}, do_normalize=False)
    for training in (False, True):
        dataset = VideoClassificationDataset(folder, processor, training=training, augment=False)
        batch = collate_videos([dataset[i] for i in range(3)])
        levels = batch["pixel_values"].mean(dim=(1, 2, 3, 4)) * 255
        torch.testing.assert_close(levels, torch.tensor([40.0, 140.0, 240.0]), atol=3, rtol=0)
        assert batch["pixel_values"].shape == (3, 4, 3, 32, 32)
    assert folder.class_names == ["first", "middle", "second", "third"]
    torch.testing.assert_close(batch["targets"], torch.tensor([[1.0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]]))
    late = read_annotations(_jsonl(root / "late.jsonl", [{"video": "long.mp4", "labels": ["x"], "start": 10}]))
    with pytest.raises(ValueError, match="long.mp4: the clip starts at 10 s, after the end"):
        VideoClassificationDataset(late, processor).load(0)


def _multi_label_folder(root: Path, tmp_path: Path):
    """12 videos: label i holds the videos whose index has bit i set (i = 0..2), at least one label each."""
    lines = []
    for index in range(1, 13):
        labels = [name for bit, name in enumerate(("x", "y", "z")) if (index % 8 or 7) >> bit & 1]
        lines.append({"video": str(root / "videos" / "a.mp4"), "labels": labels, "start": index * 0.01})
    return read_annotations(_jsonl(tmp_path / "multi.jsonl", lines))


def test_multi_label_shots_cover_every_label_and_split_whole_videos(root, tmp_path):
    folder = _multi_label_folder(root, tmp_path)
    shots, rest = select_shots(folder, 2, seed=0)
    assert all(count >= 2 for count in shots.counts().values())
    assert len(shots) + len(rest) == len(folder) and not set(shots.items) & set(rest.items)
    again, _ = select_shots(folder, 2, seed=0)
    assert again.items == shots.items
    assert len(select_shots(folder, 2, seed=1)[0].items) >= 2
    with pytest.raises(ValueError, match="fewer"):
        select_shots(folder, 99)
    train, held = split_heldout(folder, 0.25, seed=0)
    assert len(held) == 3 and len(train) == 9 and not set(train.items) & set(held.items)
    assert train.multi_label and held.multi_label


def test_video_item_keeps_single_label_construction():
    item = VideoItem(Path("v.mp4"), 3)
    assert item.labels == (3,) and item.label == 3 and not item.is_clip


def test_a_failed_multi_label_item_is_replaced_with_its_own_labels(root):
    folder = read_annotations(
        _jsonl(
            root / "swap.jsonl",
            [
                {"video": "videos/a.mp4", "labels": ["x"]},
                {"video": "videos/b.mp4", "labels": ["y", "z"]},
            ],
        )
    )
    processor = XClipVideoProcessor(crop_size=32, num_frames=4)
    dataset = VideoClassificationDataset(folder, processor, training=True)
    load = dataset.load

    def failing(index: int):
        if index == 0:
            raise ValueError("corrupt frame")
        return load(index)

    dataset.load = failing
    item = dataset[0]
    assert item["pixel_values"] is not None and len(item["failed"]) == 1
    torch.testing.assert_close(item["target"], torch.tensor([0.0, 1.0, 1.0]))  # b's labels came with b
    strict = VideoClassificationDataset(folder, processor)
    strict.load = failing
    assert strict[0]["pixel_values"] is None and collate_videos([strict[0]])["targets"].shape == (0, 3)
