"""pipeline("zero-shot-video-classification"): outputs, batching, inputs, caching, multi-label, views, formats, errors."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from testing_utils import save_tiny_transformers_xclip, write_synthetic_videos
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

import hf_xclip
from hf_xclip import XClipModel
from hf_xclip.labels import ensemble_text_embeddings
from hf_xclip.pipeline_zero_shot_video_classification import TASK, ZeroShotVideoClassificationPipeline

LABELS = ["playing guitar", "surfing", "eating spaghetti", "walking the dog", "juggling"]


@pytest.fixture(scope="module")
def transformers_dir(workdir) -> tuple[Path, transformers.XCLIPModel]:
    return save_tiny_transformers_xclip(workdir / "tiny-transformers-xclip")


@pytest.fixture(scope="module")
def videos(workdir) -> list[Path]:
    return write_synthetic_videos(workdir / "videos", count=4)


@pytest.fixture(scope="module")
def clf(model_dir) -> ZeroShotVideoClassificationPipeline:
    return pipeline(TASK, model=str(model_dir))


def scores_of(result: list[dict]) -> dict[str, float]:
    return {item["label"]: item["score"] for item in result}


def reference_probs(clf, video, labels, templates=("{}",), **processor_kwargs) -> torch.Tensor:
    """Softmax over labels computed directly with the model's forward (no pipeline, no cache), views averaged."""
    texts = [t.format(label) for label in labels for t in templates]
    tokens = clf.tokenizer(texts, padding=True, return_tensors="pt")
    num_frames = clf.model.config.vision_config.num_frames
    pixel_values = clf.video_processor(video, num_frames=num_frames, **processor_kwargs)["pixel_values"]
    with torch.no_grad():
        text = clf.model.get_text_features(**tokens).pooler_output.view(len(labels), len(templates), -1)
        out = clf.model(pixel_values=pixel_values, text_embeds=ensemble_text_embeddings(text))
    return out.logits_per_video.softmax(-1).mean(0)


def test_task_is_registered():
    assert TASK in PIPELINE_REGISTRY.get_supported_tasks()
    assert PIPELINE_REGISTRY.check_task(TASK)[1]["impl"] is ZeroShotVideoClassificationPipeline


def test_output_structure_and_sorting(clf, videos):
    result = clf(str(videos[0]), candidate_labels=LABELS)
    assert isinstance(result, list) and len(result) == len(LABELS)
    assert all(set(item) == {"score", "label"} for item in result)
    assert all(isinstance(item["score"], float) and isinstance(item["label"], str) for item in result)
    assert sorted(item["label"] for item in result) == sorted(LABELS)
    scores = [item["score"] for item in result]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-5)
    assert max(scores) - min(scores) > 1e-3  # the tiny model does tell labels apart


def test_scores_match_the_model_forward(clf, videos):
    result = scores_of(clf(str(videos[1]), candidate_labels=LABELS))
    expected = reference_probs(clf, str(videos[1]), LABELS)
    assert torch.allclose(torch.tensor([result[label] for label in LABELS]), expected, atol=1e-5)


def test_labels_are_cleaned_before_tokenizing(clf, videos):
    """Labels are tokenized after the original's cleaning (ftfy, HTML entities, case), and reported as given."""
    messy = ["ＰＬＡＹＩＮＧ", "a &amp;amp; b"]
    result = scores_of(clf(str(videos[0]), candidate_labels=messy))
    clean = scores_of(clf(str(videos[0]), candidate_labels=["playing", "a & b"]))
    assert set(result) == set(messy)
    assert result["ＰＬＡＹＩＮＧ"] == pytest.approx(clean["playing"], abs=1e-6)


def test_top_k(clf, videos):
    full = clf(str(videos[0]), candidate_labels=LABELS)
    assert clf(str(videos[0]), candidate_labels=LABELS, top_k=2) == full[:2]
    assert clf(str(videos[0]), candidate_labels=LABELS, top_k=50) == full
    with pytest.raises(ValueError, match="top_k"):
        clf(str(videos[0]), candidate_labels=LABELS, top_k=0)


def test_batches_equal_single_calls(clf, videos):
    paths = [str(v) for v in videos]
    singles = [clf(p, candidate_labels=LABELS) for p in paths]
    for batch_size, num_workers in ((1, 0), (3, 2)):
        batched = clf(paths, candidate_labels=LABELS, batch_size=batch_size, num_workers=num_workers)
        assert len(batched) == len(paths)
        for single, result in zip(singles, batched):
            assert [r["label"] for r in result] == [s["label"] for s in single]
            np.testing.assert_allclose([r["score"] for r in result], [s["score"] for s in single], atol=1e-5)
    streamed = list(clf((p for p in paths), candidate_labels=LABELS, batch_size=2))
    assert [r[0]["label"] for r in streamed] == [s[0]["label"] for s in singles]


def test_arrays_bytes_and_urls_equal_files(clf, videos):
    from hf_xclip.video_io import probe_video, read_frames

    path = videos[2]
    expected = scores_of(clf(str(path), candidate_labels=LABELS))
    frames, _ = read_frames(path, np.arange(probe_video(path).num_frames))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
        inputs = {
            "array": frames,
            "tensor": torch.from_numpy(frames),
            "channels-first": torch.from_numpy(frames).permute(0, 3, 1, 2),
            "bytes": path.read_bytes(),
            "path object": path,
            "url": url,
        }
        for kind, video in inputs.items():
            got = scores_of(clf(video, candidate_labels=LABELS))
            for label in LABELS:
                assert got[label] == pytest.approx(expected[label], abs=1e-5), kind
        with pytest.raises(ValueError, match="missing.mp4"):
            clf(url.replace(path.name, "missing.mp4"), candidate_labels=LABELS)
    finally:
        server.shutdown()
        server.server_close()


def test_label_embeddings_are_cached(model_dir, videos):
    clf = pipeline(TASK, model=str(model_dir))
    encoded: list[int] = []
    original = clf.model.text_model.forward

    def counting_forward(*args, **kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        encoded.append(int(input_ids.shape[0]))
        return original(*args, **kwargs)

    clf.model.text_model.forward = counting_forward
    first = clf([str(videos[0]), str(videos[1])], candidate_labels=LABELS)
    assert sum(encoded) == len(LABELS)  # once for the whole list, not per video
    second = clf(str(videos[0]), candidate_labels=LABELS)
    assert sum(encoded) == len(LABELS)  # same labels again: nothing re-encoded
    assert second == first[0]
    clf(str(videos[0]), candidate_labels=LABELS[:2] + ["a new label"])
    assert sum(encoded) == len(LABELS) + 1  # only the new text
    clf(str(videos[0]), candidate_labels=LABELS, hypothesis_template="a video of {}.")
    assert sum(encoded) == 2 * len(LABELS) + 1  # another template is other text
    clf.tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    clf(str(videos[0]), candidate_labels=LABELS)
    assert sum(encoded) == 3 * len(LABELS) + 1  # a different tokenizer object invalidates the cache


@pytest.mark.parametrize("method", ["auto", "background", "negative", "sigmoid"])
def test_multi_label_scores_do_not_depend_on_the_other_labels(clf, videos, method):
    video = str(videos[0])
    if method == "sigmoid":
        clf.model.config.multi_label_scale, clf.model.config.multi_label_bias = 12.0, -3.0
    try:
        result = scores_of(clf(video, candidate_labels=LABELS, multi_label=True, multi_label_method=method))
        subset = scores_of(clf(video, candidate_labels=LABELS[3:0:-1], multi_label=True, multi_label_method=method))
        single = scores_of(clf(video, candidate_labels=LABELS[2:3], multi_label=True, multi_label_method=method))
    finally:
        clf.model.config.multi_label_scale, clf.model.config.multi_label_bias = None, 0.0
    assert all(0.0 <= score <= 1.0 for score in result.values())
    assert sum(result.values()) != pytest.approx(1.0, abs=1e-3)
    for label, score in [*subset.items(), *single.items()]:
        assert score == pytest.approx(result[label], abs=1e-5)  # other labels do not matter (float rounding only)


def _logits(clf, video, texts) -> torch.Tensor:
    """X-CLIP logits (views, texts) from the model's forward (no pipeline, no cache)."""
    tokens = clf.tokenizer(texts, padding=True, return_tensors="pt")
    pixel_values = clf.video_processor(video, num_frames=clf.model.config.vision_config.num_frames)["pixel_values"]
    with torch.no_grad():
        return clf.model(pixel_values=pixel_values, **tokens).logits_per_video


def test_multi_label_methods_follow_their_definitions(clf, videos):
    from hf_xclip.multilabel import DEFAULT_BACKGROUND_PROMPTS

    video, label = str(videos[0]), LABELS[0]
    # negative: two-way softmax between "{label}" and "not {label}" (the former multi_label=True)
    negative = scores_of(clf(video, candidate_labels=[label], multi_label=True, multi_label_method="negative"))
    assert negative[label] == pytest.approx(float(reference_probs(clf, video, [label, f"not {label}"])[0]), abs=1e-5)
    custom = scores_of(clf(video, candidate_labels=[label], multi_label=True, negative_template="no {}"))
    assert custom[label] == pytest.approx(float(reference_probs(clf, video, [label, f"no {label}"])[0]), abs=1e-5)
    # background (the default without a head): the label against the mean (log-sum-exp) of the background prompts
    logits = _logits(clf, video, [label, *DEFAULT_BACKGROUND_PROMPTS])[0]
    expected = torch.sigmoid(logits[0] - (logits[1:].logsumexp(0) - np.log(len(DEFAULT_BACKGROUND_PROMPTS))))
    for method in ("auto", "background"):
        result = scores_of(clf(video, candidate_labels=[label], multi_label=True, multi_label_method=method))
        assert result[label] == pytest.approx(float(expected), abs=1e-5)
    # sigmoid head of the config: sigmoid(scale * cosine + bias); "auto" picks it when the model has one
    clf.model.config.multi_label_scale, clf.model.config.multi_label_bias = 12.0, -3.0
    try:
        auto = scores_of(clf(video, candidate_labels=[label], multi_label=True))
    finally:
        clf.model.config.multi_label_scale, clf.model.config.multi_label_bias = None, 0.0
    cosine = _logits(clf, video, [label])[0, 0] / clf.model.logit_scale.exp()
    assert auto[label] == pytest.approx(float(torch.sigmoid(12.0 * cosine - 3.0)), abs=1e-5)
    with pytest.raises(ValueError, match="sigmoid head.*hf-xclip calibrate"):
        clf(video, candidate_labels=[label], multi_label=True, multi_label_method="sigmoid")
    with pytest.raises(ValueError, match="multi_label_method"):
        clf(video, candidate_labels=[label], multi_label=True, multi_label_method="softmax")


def test_threshold_keeps_labels_at_or_above_it(clf, videos):
    video = str(videos[1])
    every = clf(video, candidate_labels=LABELS, multi_label=True)
    cut = every[2]["score"]
    kept = clf(video, candidate_labels=LABELS, multi_label=True, threshold=cut)
    assert kept == every[:3]  # at the threshold is kept, below is not
    assert clf(video, candidate_labels=LABELS, multi_label=True, threshold=cut, top_k=2) == every[:2]
    assert clf(video, candidate_labels=LABELS, multi_label=True, threshold=1.0) == [
        item for item in every if item["score"] >= 1.0
    ]
    assert clf(video, candidate_labels=LABELS, threshold=0.0) == clf(video, candidate_labels=LABELS)  # single-label too
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="threshold"):
            clf(video, candidate_labels=LABELS, multi_label=True, threshold=bad)


def test_prompt_ensembling(clf, videos):
    video = str(videos[3])
    assert clf(video, candidate_labels=LABELS, hypothesis_template=["{}"]) == clf(video, candidate_labels=LABELS)
    templates = ["{}", "a video of {}.", "someone {}"]
    result = scores_of(clf(video, candidate_labels=LABELS, hypothesis_template=templates))
    expected = reference_probs(clf, video, LABELS, templates=tuple(templates))
    assert torch.allclose(torch.tensor([result[label] for label in LABELS]), expected, atol=1e-5)


def test_ensemble_text_embeddings_definition():
    embeds = torch.randn(4, 3, 8) * torch.tensor([1.0, 5.0, 0.2]).view(1, 3, 1)
    out = ensemble_text_embeddings(embeds)
    unit = embeds / embeds.norm(dim=-1, keepdim=True)
    direction = unit.mean(1) / unit.mean(1).norm(dim=-1, keepdim=True)
    assert torch.allclose(out / out.norm(dim=-1, keepdim=True), direction, atol=1e-6)
    assert torch.allclose(out.norm(dim=-1), embeds.norm(dim=-1).mean(1), atol=1e-5)
    assert torch.equal(ensemble_text_embeddings(embeds[:, :1]), embeds[:, 0])


def test_views_average_softmax(clf, videos):
    video = str(videos[1])
    result = scores_of(clf(video, candidate_labels=LABELS, num_clips=2, num_crops=3))
    expected = reference_probs(clf, video, LABELS, num_clips=2, num_crops=3)
    assert torch.allclose(torch.tensor([result[label] for label in LABELS]), expected, atol=1e-5)
    single = scores_of(clf(video, candidate_labels=LABELS))
    assert any(abs(single[label] - result[label]) > 1e-6 for label in LABELS)
    eight = scores_of(clf(video, candidate_labels=LABELS, num_frames=8))  # any frame count
    assert sum(eight.values()) == pytest.approx(1.0, abs=1e-5)


def test_transformers_format_directory(transformers_dir, videos):
    directory, reference = transformers_dir
    assert '"model_type": "xclip"' in (directory / "config.json").read_text()
    assert "VideoMAEFeatureExtractor" in (directory / "preprocessor_config.json").read_text()
    clf = pipeline(TASK, model=str(directory))
    assert isinstance(clf.model, XClipModel)
    result = scores_of(clf(str(videos[0]), candidate_labels=LABELS))
    # transformers' own XCLIPModel on the same pixel values and tokens
    tokens = clf.tokenizer(LABELS, padding=True, return_tensors="pt")
    pixel_values = clf.video_processor(str(videos[0]))["pixel_values"]
    with torch.no_grad():
        expected = reference(**tokens, pixel_values=pixel_values).logits_per_video.softmax(-1)[0]
    assert torch.allclose(torch.tensor([result[label] for label in LABELS]), expected, atol=1e-5)


def test_model_and_processor_objects(model_dir, transformers_dir, videos, clf):
    expected = clf(str(videos[0]), candidate_labels=LABELS)
    model = XClipModel.from_pretrained(str(model_dir))
    from_objects = pipeline(TASK, model=model, tokenizer=clf.tokenizer, video_processor=clf.video_processor)
    assert from_objects(str(videos[0]), candidate_labels=LABELS) == expected
    from_model_only = pipeline(TASK, model=model)  # processor and tokenizer found through model.name_or_path
    assert from_model_only(str(videos[0]), candidate_labels=LABELS) == expected

    directory, reference = transformers_dir
    converted = pipeline(TASK, model=reference, tokenizer=str(directory), video_processor=str(directory))
    loaded = pipeline(TASK, model=str(directory))
    assert isinstance(converted.model, XClipModel)
    got, want = converted(str(videos[1]), candidate_labels=LABELS), loaded(str(videos[1]), candidate_labels=LABELS)
    assert [r["label"] for r in got] == [r["label"] for r in want]
    np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in want], atol=1e-6)


def test_device_and_dtype(model_dir, videos, clf):
    expected = scores_of(clf(str(videos[0]), candidate_labels=LABELS))
    half = pipeline(TASK, model=str(model_dir), device="cpu", dtype=torch.bfloat16)
    assert half.model.dtype == torch.bfloat16 and half.device.type == "cpu"
    result = scores_of(half(str(videos[0]), candidate_labels=LABELS))
    assert all(isinstance(score, float) for score in result.values())
    for label in LABELS:
        assert result[label] == pytest.approx(expected[label], abs=0.05)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([], "empty"),
        (["surfing", ""], "label 1 is empty"),
        (["surfing", "   "], "label 1 is empty"),
        (["surfing", 3], "label 1 is not a string: 3"),
        (["surfing", None], "not a string"),
        (["surfing", "juggling", "surfing"], "duplicate candidate label 'surfing'"),
        (None, "needs `candidate_labels`"),
        (42, "must be a list of strings"),
    ],
)
def test_bad_labels(clf, videos, labels, message):
    with pytest.raises(ValueError, match=message):
        clf(str(videos[0]), candidate_labels=labels)


def test_labels_from_comma_separated_string(clf, videos):
    result = clf(str(videos[0]), candidate_labels="surfing, juggling")
    assert sorted(r["label"] for r in result) == ["juggling", "surfing"]


@pytest.mark.parametrize("template", ["a video", "{} and {}", "{0} {1}", ["{}", "{}"]])
def test_bad_templates(clf, videos, template):
    with pytest.raises(ValueError, match="template"):
        clf(str(videos[0]), candidate_labels=LABELS, hypothesis_template=template)


def test_unreadable_videos(clf, videos, tmp_path):
    missing = tmp_path / "missing.mp4"
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 50)
    with pytest.raises(ValueError, match="missing.mp4"):
        clf(str(missing), candidate_labels=LABELS)
    with pytest.raises(ValueError, match="garbage.mp4"):
        clf(str(garbage), candidate_labels=LABELS)
    with pytest.raises(ValueError, match="garbage.mp4"):
        clf([str(videos[0]), str(garbage)], candidate_labels=LABELS)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        clf(np.zeros((2, 4, 8, 8, 3), np.uint8), candidate_labels=LABELS)
    with pytest.raises(ValueError, match="unsupported dtype|uint8|dtype"):
        clf(np.zeros((4, 8, 8, 3), bool), candidate_labels=LABELS)
    results = clf(
        [str(videos[0]), str(garbage), str(missing), str(videos[1])],
        candidate_labels=LABELS,
        return_exceptions=True,
        batch_size=2,
    )
    assert results[0] == clf(str(videos[0]), candidate_labels=LABELS)
    assert isinstance(results[1], ValueError) and "garbage.mp4" in str(results[1])
    assert isinstance(results[2], ValueError) and "missing.mp4" in str(results[2])
    assert results[3] == clf(str(videos[1]), candidate_labels=LABELS)


def test_unknown_argument(clf, videos):
    with pytest.raises(TypeError, match="candidate_label"):
        clf(str(videos[0]), candidate_label=LABELS)


def test_registration_is_idempotent():
    hf_xclip.register()
    from hf_xclip.pipeline_zero_shot_video_classification import register_pipeline

    register_pipeline()
    assert PIPELINE_REGISTRY.check_task(TASK)[1]["impl"] is ZeroShotVideoClassificationPipeline
