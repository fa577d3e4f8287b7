"""Searching a video index: the exact X-CLIP score of one text against many videos, two-stage ranking against brute
force (recall@10 with a stated candidate count), caption queries finding their videos, windows, video -> video,
FAISS (flat / IVF, rebuilt when stale), `hf-xclip search`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("faiss")
pytest.importorskip("datasets")

from testing_utils import XClipModelTester, randomise_  # noqa: E402

import hf_xclip  # noqa: E402
from hf_xclip import XClipModel  # noqa: E402
from hf_xclip.cli import main  # noqa: E402
from hf_xclip.data import write_video  # noqa: E402
from hf_xclip.data.synthetic import SyntheticVideoSpec, all_specs, render_video, write_video_folder  # noqa: E402
from hf_xclip.search import build_faiss, build_index, read_manifest  # noqa: E402
from hf_xclip.search.index import VideoIndex, exact_scores  # noqa: E402
from hf_xclip.video_io import iter_windows  # noqa: E402

NUM_CAPTIONS, PER_CAPTION = 60, 2


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """120 synthetic clips (60 captions x 2, seeded) indexed with the embedded default model."""
    root = tmp_path_factory.mktemp("search")
    rng = np.random.default_rng(0)
    specs = [all_specs()[i] for i in sorted(rng.choice(len(all_specs()), NUM_CAPTIONS, replace=False))]
    written = write_video_folder(root / "videos", PER_CAPTION, specs=specs, num_frames=16, size=64, seed=1)
    result = build_index([root / "videos"], root / "index", batch_size=8, shard_size=32)
    assert result.indexed == NUM_CAPTIONS * PER_CAPTION and not result.failed
    index = VideoIndex.open(root / "index")
    return {"root": root, "specs": specs, "written": written, "index": index}


# ------------------------------------------------------------------------------------------------ exact scores


def _tiny_model(**overrides) -> XClipModel:
    tester = XClipModelTester(projection_dim=32, prompt_heads=4, prompt_layers=2)
    torch.manual_seed(0)
    return randomise_(XClipModel(tester.config(**overrides)).eval(), 0, style="spread")


@pytest.mark.parametrize("prompt_generator", [True, False])
def test_exact_scores_equal_get_logits(prompt_generator):
    """The query-side folding of the prompt generator's key / value projections is the same function."""
    model = _tiny_model(use_prompt_generator=prompt_generator)
    generator = torch.Generator().manual_seed(1)
    text = torch.randn(32, generator=generator)
    videos = torch.randn(37, 32, generator=generator)
    prompts = torch.randn(37, 25, 32, generator=generator) * 3 + 1
    reference, _ = model.get_logits(videos, text[None], prompts)
    ours = exact_scores(model, text, videos, prompts if prompt_generator else None, chunk_size=8)
    torch.testing.assert_close(ours, reference[:, 0], rtol=1e-5, atol=1e-5)


def test_exact_scores_with_adapters_on_the_prompt_generator():
    """LoRA on the cross-attention projections: scored through the (adapted) prompt generator itself."""
    peft = pytest.importorskip("peft")
    model = _tiny_model()
    config = peft.LoraConfig(r=2, target_modules=["cross_attn.q_proj", "cross_attn.v_proj"], init_lora_weights=False)
    wrapped = peft.get_peft_model(model, config).eval()
    generator = torch.Generator().manual_seed(2)
    text, videos = torch.randn(32, generator=generator), torch.randn(5, 32, generator=generator)
    prompts = torch.randn(5, 25, 32, generator=generator)
    with torch.no_grad():
        reference, _ = wrapped.get_logits(videos, text[None], prompts)
        with wrapped.disable_adapter():
            plain, _ = wrapped.get_logits(videos, text[None], prompts)
    assert not torch.allclose(reference, plain, atol=1e-3)  # the adapter matters
    torch.testing.assert_close(exact_scores(wrapped, text, videos, prompts), reference[:, 0], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ ranking


def test_two_stage_ranking_matches_brute_force(collection):
    """recall@10 of FAISS candidates (30 of 120 rows) + exact re-ranking against exact scores of every row, over
    all 204 synthetic captions as queries (42 % of them describe no clip of the collection)."""
    index = collection["index"]
    captions = [spec.caption for spec in all_specs()]
    queries = index.encode_queries(captions)
    exact = index.exact_scores(queries)  # (204, 120) by XClipModel.get_logits
    assert exact.shape == (len(captions), len(index))
    ranked = index.rank(queries, 10, num_candidates=30)
    recall = np.mean(
        [
            len(set(exact[q].topk(10).indices.tolist()) & {row for row, _ in ranked[q]}) / 10
            for q in range(len(captions))
        ]
    )
    assert recall >= 0.99, recall
    # With every row a candidate the two stages are the brute force: same rows, same scores.
    full = index.rank(queries[:20], 10, num_candidates=len(index))
    for q, hits in enumerate(full):
        best = exact[q].topk(10)
        assert [row for row, _ in hits] == best.indices.tolist()
        np.testing.assert_allclose([score for _, score in hits], best.values.numpy(), rtol=1e-5, atol=1e-4)
    assert index.rank(queries[:3], 10, exhaustive=True) == [
        [(int(r), pytest.approx(float(s), abs=1e-4)) for s, r in zip(*exact[q].topk(10))] for q in range(3)
    ]


def test_caption_queries_find_their_videos(collection):
    """Each caption's top result is one of its two clips far above chance (1 in 60): the default model reads
    colours almost perfectly and motions in about 7 clips of 10."""
    index, written = collection["index"], collection["written"]
    top1, found = [], []
    for spec in collection["specs"]:
        own = {str(path.resolve()) for path in written[spec.caption]}
        hits = index.search(spec.caption, top_k=10)
        assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)
        top1.append(hits[0]["video"] in own)
        found.append(any(hit["video"] in own for hit in hits))
    assert np.mean(top1) >= 0.5, np.mean(top1)
    assert np.mean(found) >= 0.9, np.mean(found)


def test_search_results_and_scores(collection):
    index = collection["index"]
    spec = collection["specs"][0]
    hits = index.search(spec.caption, top_k=3)
    assert [sorted(hit) for hit in hits] == [["end", "score", "start", "video"]] * 3
    assert all(hit["start"] == 0.0 and hit["end"] == pytest.approx(2.0) for hit in hits)  # 16 frames at 8 fps
    # The score is the model's own logit for that video and text.
    model = index.model.model
    row = next(r for r in range(len(index)) if index.row(r)["video"] == hits[0]["video"])
    embeddings, prompts = index.features([row])
    text = index.encode_queries([spec.caption])
    with torch.no_grad():
        logit, _ = model.get_logits(embeddings, text, prompts)
    assert hits[0]["score"] == pytest.approx(float(logit), abs=1e-4)
    batched = index.search([spec.caption, collection["specs"][1].caption], top_k=3)
    assert batched[0] == hits
    with pytest.raises(ValueError, match="top_k"):
        index.search(spec.caption, top_k=0)
    with pytest.raises(ValueError, match="non-empty"):
        index.search("  ")


def test_search_video_finds_itself(collection):
    index = collection["index"]
    video = index.row(5)["video"]
    hits = index.search_video(video, top_k=3)
    assert hits[0]["video"] == video and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert index.search_video(5, top_k=1)[0]["video"] == video


def test_dataset_view(collection):
    import datasets

    index = collection["index"]
    dataset = index.dataset()
    assert dataset.num_rows == len(index)
    assert dataset.column_names == ["video", "start", "end", "embedding", "prompt_features", "prompt_scale"]
    files = sorted(str(p) for p in (collection["root"] / "index" / "shards").glob("*.arrow"))
    loaded = datasets.load_dataset(
        "arrow", data_files=files, split="train", cache_dir=str(collection["root"] / "hf_cache")
    )
    assert sorted(loaded["video"]) == sorted(dataset["video"])
    first = np.asarray(dataset[0]["embedding"], np.float32)
    np.testing.assert_array_equal(first, index.features([0])[0][0].numpy())


# ------------------------------------------------------------------------------------------------ windows


def test_windows_of_a_long_video(tmp_path):
    """Three 2 s clips in one file, windows of 2 s every 1 s: rows are `iter_windows`' windows, each embedded as
    the model sees those frames, and a caption's best window is where its clip is."""
    specs = [
        SyntheticVideoSpec("circle", "red", "moving left"),
        SyntheticVideoSpec("square", "blue", "growing"),
        SyntheticVideoSpec("star", "yellow", "rotating"),
    ]
    clips = [render_video(spec, num_frames=16, size=64, seed=k) for k, spec in enumerate(specs)]
    path = write_video(tmp_path / "long.mp4", np.concatenate(clips), fps=8, crf=10)
    result = build_index([path], tmp_path / "index", window=2, stride=1)
    assert (result.indexed, result.rows) == (1, 5)
    index = VideoIndex.open(tmp_path / "index")
    spans = [(index.row(r)["start"], index.row(r)["end"]) for r in range(len(index))]
    assert spans == [tuple(s) for s in iter_windows(path, window=2, stride=1, num_frames=4).spans.tolist()]
    with iter_windows(path, window=2, stride=1, num_frames=4) as windows:
        frames = [window.frames for window in windows]
    processor = index.model.video_processor
    pixels = torch.cat([processor(f, num_frames=4)["pixel_values"] for f in frames])
    expected = index.model.model.get_video_features(pixels).pooler_output
    torch.testing.assert_close(index.features(range(5))[0], expected, rtol=1e-4, atol=1e-5)
    for k, spec in enumerate(specs):
        best = index.search(spec.caption, top_k=1)[0]
        assert (best["start"], best["end"]) == (2.0 * k, 2.0 * k + 2)


# ------------------------------------------------------------------------------------------------ FAISS


def test_faiss_is_rebuilt_when_the_shards_change(tmp_path, collection):
    videos = sorted((collection["root"] / "videos").rglob("*.mp4"))
    build_index(videos[:4], tmp_path / "index")
    first = sorted(p.name for p in (tmp_path / "index").glob("faiss-*.index"))
    build_index(videos[:6], tmp_path / "index")  # append: the FAISS index covers the new rows
    second = sorted(p.name for p in (tmp_path / "index").glob("faiss-*.index"))
    assert len(first) == len(second) == 1 and first != second
    index = VideoIndex.open(tmp_path / "index")
    assert index.faiss_index.ntotal == len(index) == 6
    # A stale FAISS file (shards copied in by hand) is never used: the index is rebuilt on first search.
    for path in (tmp_path / "index").glob("faiss-*"):
        path.unlink()
    assert VideoIndex.open(tmp_path / "index").faiss_index.ntotal == 6


def test_ivf_candidates_reach_the_calibrated_recall():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, 32))
    vectors = (centres[rng.integers(0, 50, 20_000)] + 0.3 * rng.standard_normal((20_000, 32))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, info = build_faiss(vectors, "ivf", calibration_candidates=50)
    assert info.kind == "ivf" and info.nlist == min(int(4 * np.sqrt(20_000)), 20_000 // 39)
    assert info.calibration_recall >= 0.99
    assert 1 <= info.nprobe <= info.nlist
    assert build_faiss(vectors[:1000], "auto")[1].kind == "flat"


def test_search_with_an_ivf_index(tmp_path, collection):
    videos = sorted((collection["root"] / "videos").rglob("*.mp4"))[:80]
    build_index(videos, tmp_path / "index", faiss_kind="ivf")
    index = VideoIndex.open(tmp_path / "index", faiss_kind="ivf")
    index.faiss_index
    assert index.faiss_info.kind == "ivf" and index.faiss_info.nlist >= 2
    spec = collection["specs"][0]
    probed = index.search(spec.caption, top_k=5, nprobe=index.faiss_info.nlist)  # every cell: all 80 rows re-ranked
    exact = index.search(spec.caption, top_k=5, exhaustive=True)
    assert [hit["video"] for hit in probed] == [hit["video"] for hit in exact]
    np.testing.assert_allclose([h["score"] for h in probed], [h["score"] for h in exact], atol=1e-4)


# ------------------------------------------------------------------------------------------------ model checks


def test_search_refuses_another_model(tmp_path, collection):
    from testing_utils import save_tiny_xclip

    from hf_xclip.search import IndexModelMismatchError

    other = save_tiny_xclip(tmp_path / "other")
    with pytest.raises(IndexModelMismatchError, match="made by hf_xclip:default"):
        VideoIndex.open(collection["root"] / "index", str(other))
    code = main(["search", str(collection["root"] / "index"), "a red circle", "--model", str(other)])
    assert code == 2


# ------------------------------------------------------------------------------------------------ command line


def test_search_command_json_and_table(collection, capsys):
    index_dir = str(collection["root"] / "index")
    caption = collection["specs"][0].caption
    assert main(["search", index_dir, caption, "--top-k", "3", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    expected = collection["index"].search(caption, top_k=3)

    def spans(items):
        return [(r["video"], r["start"], r["end"]) for r in items]

    assert spans(results) == spans(expected)
    np.testing.assert_allclose([r["score"] for r in results], [r["score"] for r in expected], atol=1e-4)
    assert [sorted(r) for r in results] == [["end", "score", "start", "video"]] * 3
    assert main(["search", index_dir, caption, "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "1" and results[0]["video"] in lines[0]
    assert main(["search", index_dir, "--video", results[0]["video"], "--top-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["video"] == results[0]["video"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{index}"], "give a TEXT"),
        (["{index}", "text", "--video", "x.mp4"], "not both"),
        (["{index}", "text", "--top-k", "0"], "--top-k must be at least 1"),
        (["{missing}", "text"], "not found"),
        (["{videos}", "text"], "not an hf_xclip video index"),
    ],
)
def test_search_command_usage_errors(collection, capsys, argv, message):
    paths = {
        "index": collection["root"] / "index",
        "missing": collection["root"] / "nope",
        "videos": collection["root"] / "videos",
    }
    assert main(["search", *(a.format(**paths) for a in argv)]) == 2
    assert message in capsys.readouterr().err


def test_default_model_is_recorded_by_name(collection):
    """The embedded model is recorded by name, not by its install path, so the index opens wherever hf_xclip is
    installed."""
    index = collection["index"]
    assert index.info.model == "hf_xclip:default" and index.info.adapter is None
    assert index.model.name == "hf_xclip:default" and hf_xclip.default_model_path()
    assert read_manifest(collection["root"] / "index").rows == len(index)
