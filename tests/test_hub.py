"""Pushing to the Hub (offline: huggingface_hub's HfApi calls are replaced by recorders) and model cards."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from huggingface_hub import CommitInfo, HfApi, ModelCard, RepoUrl
from test_remote_code import (
    SHIPPED_MODEL_FILES,
    SHIPPED_PROCESSOR_FILES,
    run_without_hf_xclip,
    save_tiny_model,
    write_expectations,
)

from hf_xclip import XClipModel, XClipProcessor, XClipTextModel
from hf_xclip.hub.model_cards import check_model_card, converted_model_card, finetuned_model_card
from hf_xclip.hub.push import add_remote_code, push_model
from hf_xclip.pipeline_zero_shot_video_classification import TASK

PIPELINE_FILE = "pipeline_zero_shot_video_classification.py"
AUTO_MAP = {"AutoConfig": "configuration_xclip.XClipConfig", "AutoModel": "modeling_xclip.XClipModel"}


class FakeHub:
    """Records HfApi calls; an upload copies the folder into ``repos/<repo_id>`` (what the Hub would serve)."""

    def __init__(self, root: Path):
        self.root = root
        self.calls: list[tuple[str, dict]] = []

    def repo(self, repo_id: str) -> Path:
        return self.root / "repos" / repo_id

    def install(self, monkeypatch) -> None:
        hub = self

        def create_repo(self, repo_id, **kwargs):
            hub.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def create_branch(self, repo_id, **kwargs):
            hub.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            hub.calls.append(("upload_folder", {"repo_id": repo_id, **kwargs}))
            target = hub.repo(repo_id)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(folder_path, target)
            return _commit_info(repo_id)

        def create_commit(self, repo_id, operations, **kwargs):
            hub.calls.append(("create_commit", {"repo_id": repo_id, **kwargs}))
            target = hub.repo(repo_id)
            target.mkdir(parents=True, exist_ok=True)
            for op in operations:
                (target / op.path_in_repo).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(op.path_or_fileobj, target / op.path_in_repo)
            return _commit_info(repo_id)

        for name, fn in (
            ("create_repo", create_repo),
            ("create_branch", create_branch),
            ("upload_folder", upload_folder),
            ("create_commit", create_commit),
        ):
            monkeypatch.setattr(HfApi, name, fn)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def _commit_info(repo_id: str) -> CommitInfo:
    url = f"https://huggingface.co/{repo_id}/commit/{'0' * 40}"
    return CommitInfo(commit_url=url, commit_message="", commit_description="", oid="0" * 40)


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def _strip_code(directory: Path) -> None:
    """What a directory written without hf_xclip's auto classes looks like (e.g. an older conversion)."""
    for path in directory.glob("*.py"):
        path.unlink()
    for name in ("config.json", "processor_config.json", "tokenizer_config.json"):
        data = json.loads((directory / name).read_text())
        data.pop("auto_map", None)
        data.get("video_processor", {}).pop("auto_map", None)
        (directory / name).write_text(json.dumps(data, indent=2))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("hub") / "tiny-xclip"
    save_tiny_model(directory, seed=3)
    return directory


@pytest.fixture
def fake_hub(tmp_path, monkeypatch) -> FakeHub:
    hub = FakeHub(tmp_path)
    hub.install(monkeypatch)
    return hub


# ------------------------------------------------------------------------------------------ add_remote_code


def test_add_remote_code_completes_a_directory_without_code(model_dir, tmp_path):
    directory = tmp_path / "old"
    shutil.copytree(model_dir, directory)
    _strip_code(directory)
    written = {p.name for p in add_remote_code(directory)}
    assert SHIPPED_MODEL_FILES | SHIPPED_PROCESSOR_FILES | {"config.json", "processor_config.json"} <= written
    config = json.loads((directory / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP
    assert "custom_pipelines" not in config and not (directory / PIPELINE_FILE).exists()
    assert json.loads((directory / "processor_config.json").read_text())["auto_map"] == {
        "AutoProcessor": "processing_xclip.XClipProcessor"
    }

    add_remote_code(directory, pipeline=True)
    assert (directory / PIPELINE_FILE).is_file()
    assert json.loads((directory / "config.json").read_text())["custom_pipelines"][TASK]["pt"] == ["AutoModel"]
    snapshot = _digest(directory)
    add_remote_code(directory, pipeline=True)  # idempotent
    assert _digest(directory) == snapshot
    assert XClipModel.from_pretrained(directory).config.to_dict()["projection_dim"] == 64  # still loads with hf_xclip


def test_add_remote_code_rejects_what_it_cannot_ship(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        add_remote_code(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "xclip", "architectures": ["XCLIPModel"]}))
    with pytest.raises(ValueError, match="transformers' X-CLIP"):
        add_remote_code(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(ValueError, match="BertModel"):
        add_remote_code(tmp_path)


def test_pipeline_needs_the_full_model(model_dir, tmp_path):
    XClipTextModel(XClipModel.from_pretrained(model_dir).config.text_config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="XClipModel"):
        add_remote_code(tmp_path, pipeline=True)


# ---------------------------------------------------------------------------------------------- push_model


def test_push_directory_uploads_one_complete_commit_that_loads_without_hf_xclip(model_dir, tmp_path, fake_hub):
    source = tmp_path / "converted"
    shutil.copytree(model_dir, source)
    _strip_code(source)  # e.g. an older conversion's output: no code for AutoModel
    before = _digest(source)

    info = push_model(source, "me/tiny-xclip", private=True)

    assert info.commit_url.startswith("https://huggingface.co/me/tiny-xclip/commit/")
    assert fake_hub.names() == ["create_repo", "upload_folder"]
    assert fake_hub.calls[0][1]["private"] is True and fake_hub.calls[0][1]["exist_ok"] is True
    assert _digest(source) == before, "push_model changed the source directory"
    repo = fake_hub.repo("me/tiny-xclip")
    files = {p.name for p in repo.iterdir()}
    assert {"model.safetensors", "config.json", "processor_config.json", "README.md", PIPELINE_FILE} <= files
    assert SHIPPED_MODEL_FILES | SHIPPED_PROCESSOR_FILES <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    data = check_model_card(repo / "README.md")
    assert data.pipeline_tag == "video-classification" and "hf_xclip" in data.tags
    assert "trust_remote_code=True" in ModelCard.load(repo / "README.md").text

    job = write_expectations(source, tmp_path / "expected.pt")
    job.update(model_dir=str(repo), pipeline_dir=str(repo), checks=["model", "pipeline", "hf_xclip_absent"])
    report = run_without_hf_xclip(job, tmp_path)
    assert report == {check: "ok" for check in job["checks"]}, report


def test_push_model_object_with_processor_and_finetuned_card(model_dir, fake_hub):
    model = XClipModel.from_pretrained(model_dir)
    processor = XClipProcessor.from_pretrained(model_dir)
    push_model(
        model,
        "me/tiny-finetuned",
        processor=processor,
        revision="v1",
        card_kwargs={
            "base_model": "microsoft/xclip-base-patch32",
            "datasets": "hmdb51",
            "results": {"accuracy": 0.625},
            "dataset_name": "HMDB-51 (split 1, 8 shots)",
        },
    )
    assert fake_hub.names() == ["create_repo", "create_branch", "upload_folder"]
    assert fake_hub.calls[1][1]["branch"] == "v1" and fake_hub.calls[2][1]["revision"] == "v1"
    repo = fake_hub.repo("me/tiny-finetuned")
    card = ModelCard.load(repo / "README.md")
    assert card.data.base_model == "microsoft/xclip-base-patch32" and card.data.datasets == ["hmdb51"]
    (result,) = card.data.eval_results
    assert (result.metric_type, result.metric_value, result.task_type) == ("accuracy", 0.625, "video-classification")
    reloaded = XClipModel.from_pretrained(repo)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value, rtol=0, atol=0)


def test_push_model_keeps_a_conversion_card_and_adds_remote_code_usage(model_dir, tmp_path, fake_hub):
    source = tmp_path / "converted"
    shutil.copytree(model_dir, source)
    config = XClipModel.config_class.from_pretrained(source)
    converted_model_card(
        title="Tiny X-CLIP",
        summary="A test.",
        source_file="tiny.pth",
        source_sha256="ab" * 32,
        config=config,
        repo_id="me/converted",
    ).save(source / "README.md")
    push_model(source, "me/converted", pipeline=False)
    text = (fake_hub.repo("me/converted") / "README.md").read_text()
    assert "# Tiny X-CLIP" in text and "tiny.pth" in text  # the conversion's card, kept
    assert 'AutoModel.from_pretrained("me/converted", trust_remote_code=True)' in text
    assert PIPELINE_FILE not in {p.name for p in fake_hub.repo("me/converted").iterdir()}


def test_push_model_refuses_bad_input_before_uploading(model_dir, tmp_path, fake_hub):
    with pytest.raises(FileNotFoundError, match="config.json"):
        push_model(tmp_path, "me/x")
    no_weights = tmp_path / "bin-only"
    shutil.copytree(model_dir, no_weights)
    (no_weights / "model.safetensors").rename(no_weights / "pytorch_model.bin")
    with pytest.raises(ValueError, match="safetensors"):
        push_model(no_weights, "me/x")
    with pytest.raises(ValueError, match="tokenizer and a video processor"):
        push_model(XClipModel.from_pretrained(model_dir), "me/x")  # the pipeline needs a processor
    with pytest.raises(ValueError, match="license"):
        push_model(model_dir, "me/x", model_card="---\ntags: [video]\n---\n\n# Card\n")
    with pytest.raises(TypeError, match="hf_xclip model"):
        push_model(torch.nn.Linear(2, 2), "me/x")
    assert fake_hub.calls == []


def test_push_model_refuses_peft_models(model_dir, fake_hub):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(XClipModel.from_pretrained(model_dir), LoraConfig(target_modules=["q_proj"]))
    with pytest.raises(TypeError, match="merge_and_unload"):
        push_model(peft_model, "me/x")
    assert fake_hub.calls == []


def test_transformers_push_to_hub_ships_the_code_too(model_dir, fake_hub, monkeypatch):
    """`model.push_to_hub` (transformers' own) uploads config, weights and the model code."""
    monkeypatch.setattr(
        transformers.utils.hub,
        "create_and_tag_model_card",
        lambda repo_id, tags=None, token=None: finetuned_model_card(model.config, repo_id=repo_id),
    )
    model = XClipModel.from_pretrained(model_dir)
    model.push_to_hub("me/native")
    assert fake_hub.names() == ["create_repo", "create_commit"]
    files = {p.name for p in fake_hub.repo("me/native").iterdir()}
    assert SHIPPED_MODEL_FILES | {"config.json", "model.safetensors", "README.md"} <= files
    assert json.loads((fake_hub.repo("me/native") / "config.json").read_text())["auto_map"]["AutoModel"] == (
        "modeling_xclip.XClipModel"
    )


# --------------------------------------------------------------------------------------------- model cards


def test_finetuned_card_metadata(model_dir):
    config = XClipModel.config_class.from_pretrained(model_dir)
    card = finetuned_model_card(
        config,
        repo_id="me/m",
        base_model="microsoft/xclip-base-patch16-zero-shot",
        results={"accuracy": 0.5, "top5_accuracy": 0.9},
        dataset_name="UCF-101",
    )
    data = check_model_card(card)
    assert (data.license, data.library_name, data.model_name) == ("mit", "transformers", "me/m")
    assert {r.metric_type: r.metric_value for r in data.eval_results} == {"accuracy": 0.5, "top5_accuracy": 0.9}
    reparsed = ModelCard(str(card))  # what the Hub parses back from README.md
    assert reparsed.data.to_dict() == card.data.to_dict()
    with pytest.raises(ValueError, match="dataset_name"):
        finetuned_model_card(config, repo_id="me/m", results={"accuracy": 0.5})
    with pytest.raises(ValueError, match="number"):
        finetuned_model_card(config, repo_id="me/m", results={"accuracy": "high"}, dataset_name="UCF-101")


def test_conversion_cards_pass_the_check(model_dir):
    config = XClipModel.config_class.from_pretrained(model_dir)
    card = converted_model_card(
        title="T", summary="S", source_file="k400_32_8.pth", source_sha256="0" * 64, config=config
    )
    assert check_model_card(card).pipeline_tag == "video-classification"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# no metadata\n", "no YAML metadata"),
        ("---\nlicense: mit\nlibrary_name: transformers\n---\n\n# Card\n", "pipeline_tag"),
        ("---\nlicense: mit\nlibrary_name: transformers\npipeline_tag: video-classification\n---\n\n", "no text"),
        (
            "---\nlicense: mit\nlibrary_name: transformers\npipeline_tag: video-classification\ntags: [1, 2]\n---\n\n# C\n",
            "tags",
        ),
        ("---\nlicense: [mit\n---\n\n# C\n", "cannot be parsed"),
    ],
)
def test_check_model_card_names_the_problem(text, problem):
    with pytest.raises(ValueError, match=problem):
        check_model_card(text)
