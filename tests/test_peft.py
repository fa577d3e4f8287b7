"""PEFT adapters of X-CLIP: LoRA targets, CoOp context insertion, save / reload, autocast, gradient checkpointing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from peft import PeftModel, get_peft_model
from testing_utils import XClipModelTester

from hf_xclip import XClipConfig, XClipModel
from hf_xclip.finetuning.peft_config import (
    CoOpConfig,
    VLPromptsConfig,
    XClipAdapterConfig,
    lora_target_modules,
    to_peft_config,
)
from hf_xclip.finetuning.peft_model import (
    enable_gradient_checkpointing,
    get_xclip_peft_model,
    init_prompt_context,
    parameter_groups,
    text_is_trainable,
)

MAX_POSITIONS = 16
CLASSES = ["a red circle growing", "a green square moving left", "a blue triangle moving up"]


def tiny_config(tokenizer, **overrides) -> XClipConfig:
    return XClipModelTester.synthetic(tokenizer, patch_size=16, seq_length=MAX_POSITIONS).config(**overrides)


def tiny_model(tokenizer, seed: int = 0, **overrides) -> XClipModel:
    torch.manual_seed(seed)
    return XClipModel(tiny_config(tokenizer, **overrides)).eval()


@pytest.fixture(scope="module")
def inputs(tokenizer):
    text = tokenizer(CLASSES, padding=True, return_tensors="pt")
    generator = torch.Generator().manual_seed(1)
    return {
        "input_ids": text["input_ids"],
        "attention_mask": text["attention_mask"],
        "pixel_values": torch.randn(2, 4, 3, 32, 32, generator=generator),
    }


def _perturb_trainable(model: torch.nn.Module, seed: int = 0) -> None:
    """Make every trainable tensor non-trivial (LoRA B starts at zero, which would hide reload bugs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))


# ---------------------------------------------------------------------------------------------------------------
# Target modules and configs
# ---------------------------------------------------------------------------------------------------------------


def _targeted(model: torch.nn.Module, pattern: str) -> set[str]:
    return {name for name, _ in model.named_modules() if re.fullmatch(pattern, name)}


def test_lora_target_modules_select_each_part(tokenizer):
    model = tiny_model(tokenizer)
    linear = {name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    text = _targeted(model, lora_target_modules(text=True, vision=False, cross_frame=False))
    assert text and all(n.startswith("text_model.encoder.layers.") and ".self_attn." in n for n in text)
    assert len(text) == 2 * 4
    vision = _targeted(model, lora_target_modules(vision=True, cross_frame=False))
    assert vision and all(n.startswith("vision_model.") and ".self_attn." in n for n in vision)
    cross = _targeted(model, lora_target_modules(vision=False, cross_frame=True))
    assert cross == {
        f"vision_model.encoder.layers.{i}.{m}"
        for i in range(2)
        for m in (
            "message_fc",
            "message_attn.q_proj",
            "message_attn.k_proj",
            "message_attn.v_proj",
            "message_attn.out_proj",
        )
    }
    mit = _targeted(model, lora_target_modules(vision=False, cross_frame=False, mit=True, mlp=True))
    assert mit == {
        f"mit.encoder.layers.0.{m}"
        for m in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.out_proj",
            "mlp.fc1",
            "mlp.fc2",
        )
    }
    prompts = _targeted(model, lora_target_modules(vision=False, cross_frame=False, prompt_generator=True))
    assert prompts and all(n.startswith("prompts_generator.decoder.") for n in prompts) and len(prompts) == 2 * 6
    everything = lora_target_modules(
        text=True, vision=True, cross_frame=True, mit=True, prompt_generator=True, projections=True, mlp=True
    )
    assert _targeted(model, everything) == linear  # every nn.Linear of X-CLIP is reachable
    with pytest.raises(ValueError, match="no part"):
        lora_target_modules(vision=False, cross_frame=False)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CoOpConfig(num_context=0), "CoOpConfig.num_context must be at least 1, got 0."),
        (lambda: CoOpConfig(num_classes=0), "CoOpConfig.num_classes must be at least 1, got 0."),
        (lambda: CoOpConfig(init_std=0), "CoOpConfig.init_std must be positive, got 0."),
        (lambda: VLPromptsConfig(vision_tokens=-1), "VLPromptsConfig.vision_tokens must be >= 0, got -1."),
        (lambda: VLPromptsConfig(depth=0), "VLPromptsConfig.depth must be at least 1, got 0."),
        (lambda: VLPromptsConfig(init_std=-1.0), "VLPromptsConfig.init_std must be positive, got -1.0."),
    ],
)
def test_prompt_config_sizes_are_checked_by_name(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert str(err.value) == message


def test_adapter_config_checks():
    with pytest.raises(ValueError, match="lora_type"):
        XClipAdapterConfig(lora_type="ia3")
    with pytest.raises(ValueError, match="adapts nothing"):
        XClipAdapterConfig(lora_type=None)
    with pytest.raises(ValueError, match="Unknown adapter method"):
        XClipAdapterConfig.for_method("prefix")
    with pytest.raises(ValueError, match="num_context"):
        CoOpConfig(num_context=0)
    combo = XClipAdapterConfig.for_method(["lora", "coop", "prompt-generator"])
    assert combo.methods == ["lora", "coop", "prompt-generator", "mit"]
    assert combo.modules_to_save() == [
        "prompt_context",
        "prompts_generator",
        "prompts_visual_layernorm",
        "prompts_visual_proj",
        "mit",
    ]
    assert to_peft_config(combo).task_type is None


def test_prompt_generator_method_needs_a_prompt_generator(tokenizer):
    model = tiny_model(tokenizer, use_prompt_generator=False, video_pooling="mean")
    with pytest.raises(ValueError, match="no prompt generator"):
        get_xclip_peft_model(model, XClipAdapterConfig.for_method("prompt-generator"))


# ---------------------------------------------------------------------------------------------------------------
# CoOp context
# ---------------------------------------------------------------------------------------------------------------


def _pooled_with_manual_context(model, tokenizer, texts, context) -> torch.Tensor:
    """Reference: build [SOT] ctx [class tokens] [EOT] by hand and run the plain text model on the embeddings."""
    rows = []
    ids_rows = []
    embedding = model.get_input_embeddings()
    for k, text in enumerate(texts):
        ids = tokenizer(text, truncation=False)["input_ids"]
        ctx = context[k if context.shape[0] > 1 else 0]
        body = ids[1:-1][: MAX_POSITIONS - 2 - ctx.shape[0]]
        tokens = embedding(torch.tensor(ids[:1] + body + ids[-1:]))
        rows.append(torch.cat([tokens[:1], ctx, tokens[1:]]))
        filler = [0] * ctx.shape[0]
        ids_rows.append(ids[:1] + filler + body + ids[-1:])
    length = max(r.shape[0] for r in rows)
    pad = tokenizer.pad_token_id
    embeds = torch.stack([torch.cat([r, embedding(torch.full((length - r.shape[0],), pad))]) for r in rows])
    ids = torch.tensor([r + [pad] * (length - len(r)) for r in ids_rows])
    module = model.text_model.prompt_context
    saved, module.context = module.context, None  # the plain text model, without the hook
    try:
        return model.text_model(input_ids=ids, inputs_embeds=embeds).pooler_output
    finally:
        module.context = saved


@pytest.mark.parametrize("class_specific", [False, True])
def test_context_inserted_after_sot_and_eot_pooled(tokenizer, class_specific):
    model = tiny_model(tokenizer)
    coop = CoOpConfig(num_context=3, init_text=None, class_specific=class_specific)
    context = init_prompt_context(model, coop, num_classes=len(CLASSES), generator=torch.Generator().manual_seed(0))
    assert context.shape == (len(CLASSES) if class_specific else 1, 3, 32)
    text = tokenizer(CLASSES, padding=True, return_tensors="pt")
    with torch.no_grad():
        got = model.text_model(**text).pooler_output
        expected = _pooled_with_manual_context(model, tokenizer, CLASSES, context)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_context_truncates_class_tokens_to_keep_eot(tokenizer):
    model = tiny_model(tokenizer)
    long_text = "a red circle moving left a blue square moving up a green star growing and more"  # 17 words
    short_text = "a red circle"
    context = init_prompt_context(model, CoOpConfig(num_context=4, init_text=None))
    text = tokenizer(
        [long_text, short_text], padding="max_length", truncation=True, max_length=MAX_POSITIONS, return_tensors="pt"
    )
    assert (text["input_ids"][0] == tokenizer.eos_token_id).nonzero()[0].item() == MAX_POSITIONS - 1
    module = model.text_model.prompt_context
    ids, embeds, mask = module(
        text["input_ids"], None, text["attention_mask"], model.get_input_embeddings(), tokenizer.eos_token_id
    )
    assert ids.shape == (2, MAX_POSITIONS) and embeds.shape == (2, MAX_POSITIONS, 32)
    # long text: EOT moved to the last position, class tokens cut; short text: EOT shifted by n_ctx
    assert ids[0, -1] == tokenizer.eos_token_id and (ids[0, :-1] != tokenizer.eos_token_id).all()
    eot = model.get_input_embeddings().weight[tokenizer.eos_token_id]
    torch.testing.assert_close(embeds[0, -1], eot)
    torch.testing.assert_close(embeds[:, 1:5], context.expand(2, -1, -1))
    assert (ids[1] == tokenizer.eos_token_id).nonzero()[0].item() == 4 + 4  # SOT + ctx + "a red circle"
    assert mask.shape == (2, MAX_POSITIONS) and mask[:, :5].all()
    with torch.no_grad():
        pooled = model.text_model(**text).pooler_output
        manual = _pooled_with_manual_context(model, tokenizer, [long_text, short_text], context)
    torch.testing.assert_close(pooled, manual, rtol=1e-5, atol=1e-5)


def test_context_errors(tokenizer):
    model = tiny_model(tokenizer)
    init_prompt_context(model, CoOpConfig(num_context=2, init_text=None, class_specific=True), num_classes=3)
    with pytest.raises(ValueError, match="3 classes but 2 texts"):
        model.text_model(**tokenizer(CLASSES[:2], padding=True, return_tensors="pt"))
    with pytest.raises(ValueError, match="already has a prompt context"):
        init_prompt_context(model, CoOpConfig(num_context=2, init_text=None))
    with pytest.raises(ValueError, match="needs the number of classes"):
        init_prompt_context(tiny_model(tokenizer), CoOpConfig(init_text=None, class_specific=True))
    with pytest.raises(ValueError, match="needs the tokenizer"):
        init_prompt_context(tiny_model(tokenizer), CoOpConfig())
    with pytest.raises(ValueError, match="cannot spell"):
        init_prompt_context(tiny_model(tokenizer), CoOpConfig(init_text="a zebra"), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="more than num_context"):
        init_prompt_context(
            tiny_model(tokenizer), CoOpConfig(init_text="a photo of a", num_context=2), tokenizer=tokenizer
        )


def test_context_initialised_from_phrase(tokenizer):
    model = tiny_model(tokenizer)
    context = init_prompt_context(model, CoOpConfig(init_text="a photo of a", num_context=6), tokenizer=tokenizer)
    ids = tokenizer("a photo of a", add_special_tokens=False)["input_ids"]
    assert context.shape == (1, 6, 32)
    torch.testing.assert_close(context[0, :4], model.get_input_embeddings().weight[ids])
    assert not torch.equal(context[0, 4], context[0, 5])  # the rest is random


def test_empty_context_is_invisible(tokenizer, inputs, tmp_path):
    model = tiny_model(tokenizer)
    assert not any("prompt_context" in key for key in model.state_dict())
    model.save_pretrained(tmp_path)
    reloaded = XClipModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits_per_video, reloaded(**inputs).logits_per_video)


# ---------------------------------------------------------------------------------------------------------------
# Save and reload
# ---------------------------------------------------------------------------------------------------------------

METHOD_CASES = {
    "lora": XClipAdapterConfig.for_method("lora", lora_text=True),
    "dora": XClipAdapterConfig.for_method("lora", lora_type="dora"),
    "loha": XClipAdapterConfig.for_method("lora", lora_type="loha", lora_mit=True),
    "coop": XClipAdapterConfig.for_method("coop"),
    "coop-class-specific": XClipAdapterConfig.for_method(
        "coop", coop=CoOpConfig(num_context=4, init_text=None, class_specific=True)
    ),
    "prompt-generator": XClipAdapterConfig.for_method("prompt-generator"),
    "all": XClipAdapterConfig.for_method(["lora", "coop", "prompt-generator"]),
    "vl-prompts": XClipAdapterConfig.for_method("vl-prompts", vl_prompts=VLPromptsConfig(3, 2, init_text=None)),
    "vl-prompts-lora": XClipAdapterConfig.for_method(["vl-prompts", "lora"]),
    "vl-prompts-shallow": XClipAdapterConfig.for_method("vl-prompts", vl_prompts=VLPromptsConfig(0, 4, depth=1)),
}


@pytest.mark.parametrize("case", list(METHOD_CASES))
def test_adapter_saves_only_itself_and_reloads_identically(tokenizer, inputs, tmp_path, case):
    config = METHOD_CASES[case]
    base_dir = tmp_path / "base"
    tiny_model(tokenizer).save_pretrained(base_dir)
    base = XClipModel.from_pretrained(base_dir).eval()
    with torch.no_grad():
        base_logits = base(**inputs).logits_per_video
    peft_model = get_xclip_peft_model(base, config, tokenizer=tokenizer, class_names=CLASSES, seed=0).eval()
    _perturb_trainable(peft_model)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    with torch.no_grad():
        logits = peft_model(**inputs).logits_per_video
        with peft_model.disable_adapter():
            torch.testing.assert_close(peft_model(**inputs).logits_per_video, base_logits)
    assert (logits - base_logits).abs().max() > 1e-3  # the adapter does something

    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    adapter_bytes = (adapter_dir / "adapter_model.safetensors").stat().st_size
    model_bytes = (base_dir / "model.safetensors").stat().st_size
    assert adapter_bytes < 4 * trainable + 16_384  # the trainable tensors (fp32) and a header: nothing else
    if case in ("lora", "dora", "coop", "coop-class-specific", "vl-prompts", "vl-prompts-shallow"):
        assert adapter_bytes < 0.1 * model_bytes

    fresh = XClipModel.from_pretrained(base_dir).eval()
    restored = PeftModel.from_pretrained(fresh, adapter_dir).eval()
    with torch.no_grad():
        assert (restored(**inputs).logits_per_video - logits).abs().max() == 0

    restored.load_adapter(adapter_dir, adapter_name="second")
    restored.set_adapter("second")
    with torch.no_grad():
        assert (restored(**inputs).logits_per_video - logits).abs().max() == 0

    if case == "dora":
        return  # transformers' load_adapter (5.x) drops DoRA magnitude vectors for every model, not only X-CLIP
    plain = XClipModel.from_pretrained(base_dir).eval()
    plain.load_adapter(str(adapter_dir))  # transformers' integration
    with torch.no_grad():
        assert (plain(**inputs).logits_per_video - logits).abs().max() == 0
    for module in (
        plain.text_model.prompt_context,
        plain.text_model.deep_prompts,
        plain.vision_model.prompt_tokens,
        plain.vision_model.deep_prompts,
    ):
        assert getattr(module, "original_module", module).is_empty  # the base model itself stays prompt-free


def test_vl_prompts_sizes_and_what_they_train(tokenizer):
    model = tiny_model(tokenizer)
    peft_model = get_xclip_peft_model(model, XClipAdapterConfig.for_method("vl-prompts"), tokenizer=tokenizer)
    trained = {name: tuple(p.shape) for name, p in peft_model.named_parameters() if p.requires_grad}
    # the original few-shot recipe: 10 tokens per tower, own prompts in every layer (2 here); "a photo of a" has
    # fewer tokens than 10, so the context is random like the original's
    assert sorted(trained.values()) == [(1, 10, 32), (1, 10, 32), (1, 10, 32), (10, 32)]
    assert all("modules_to_save" in name for name in trained)
    groups = parameter_groups(peft_model, {"vl-prompts": 1.0}, 0.1)
    assert [(g["name"], g["weight_decay"]) for g in groups] == [("vl-prompts", 0.1)]  # AdamW decay as the original
    assert text_is_trainable(peft_model)

    # a context of at most as many tokens as the init phrase starts from its token embeddings (the original's rule)
    model = tiny_model(tokenizer)
    get_xclip_peft_model(
        model, XClipAdapterConfig.for_method("vl-prompts", vl_prompts=VLPromptsConfig(2, 3)), tokenizer=tokenizer
    )
    ids = tokenizer("a photo of a", add_special_tokens=False)["input_ids"][:3]
    context = model.text_model.prompt_context.modules_to_save["default"].context
    torch.testing.assert_close(context[0], model.get_input_embeddings().weight[ids])

    with pytest.raises(ValueError, match="exceeds the model's layers"):
        get_xclip_peft_model(
            tiny_model(tokenizer),
            XClipAdapterConfig.for_method("vl-prompts", vl_prompts=VLPromptsConfig(depth=3)),
            tokenizer=tokenizer,
        )
    with pytest.raises(ValueError, match="drop coop"):
        XClipAdapterConfig.for_method(["vl-prompts", "coop"])
    with pytest.raises(ValueError, match="text_tokens"):
        VLPromptsConfig(text_tokens=0)


def test_vl_prompts_train_a_models_own_prompts(tokenizer, inputs, tmp_path):
    """A model that carries prompts (a converted prompted ViFi-CLIP) trains them as they are."""
    config = tiny_config(tokenizer)
    config.text_config.num_prompt_tokens, config.text_config.prompt_depth = 3, 2
    config.vision_config.num_prompt_tokens, config.vision_config.prompt_depth = 2, 2
    torch.manual_seed(0)
    XClipModel(config).save_pretrained(tmp_path / "base")
    base = XClipModel.from_pretrained(tmp_path / "base").eval()
    with torch.no_grad():
        base_logits = base(**inputs).logits_per_video
    peft_model = get_xclip_peft_model(base, XClipAdapterConfig.for_method("vl-prompts"), tokenizer=tokenizer).eval()
    trained = sorted(tuple(p.shape) for p in peft_model.parameters() if p.requires_grad)
    assert trained == [(1, 2, 32), (1, 3, 32), (1, 3, 32), (2, 32)]
    with torch.no_grad():  # training starts from the model's prompts
        torch.testing.assert_close(peft_model(**inputs).logits_per_video, base_logits, rtol=0, atol=0)
    _perturb_trainable(peft_model)
    peft_model.save_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        logits = peft_model(**inputs).logits_per_video
        with peft_model.disable_adapter():  # the base model keeps its own prompts
            torch.testing.assert_close(peft_model(**inputs).logits_per_video, base_logits, rtol=0, atol=0)
    restored = PeftModel.from_pretrained(XClipModel.from_pretrained(tmp_path / "base"), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.equal(restored(**inputs).logits_per_video, logits)
    with pytest.raises(ValueError, match="already carries learned prompts"):
        get_xclip_peft_model(
            XClipModel.from_pretrained(tmp_path / "base"),
            XClipAdapterConfig.for_method("vl-prompts", vl_prompts=VLPromptsConfig(text_tokens=5)),
        )


def test_real_size_adapters_are_a_small_fraction():
    """Parameter counts on a default-size (ViT-B/32) X-CLIP, built on the meta device (no memory)."""
    config = XClipConfig()
    with torch.device("meta"):
        total = sum(p.numel() for p in XClipModel(config).parameters())
    fractions = {}
    for method in ("lora", "prompt-generator"):
        with torch.device("meta"):
            model = XClipModel(config)
        peft_model = get_peft_model(model, to_peft_config(XClipAdapterConfig.for_method(method), model))
        fractions[method] = sum(p.numel() for p in peft_model.parameters() if p.requires_grad) / total
    assert fractions["lora"] < 0.01
    assert fractions["prompt-generator"] < 0.06
    assert 4 * config.text_config.hidden_size / total < 1e-4  # CoOp, 4 context vectors


def test_task_type(tokenizer, inputs):
    """Ours runs with task_type=None (used by get_xclip_peft_model) and also with "FEATURE_EXTRACTION", whose
    wrapper passes text-model keywords (inputs_embeds, output_attentions, ...) that transformers' port misroutes."""
    peft_model = get_xclip_peft_model(tiny_model(tokenizer), XClipAdapterConfig.for_method("lora"))
    assert peft_model.peft_config["default"].task_type is None
    _perturb_trainable(peft_model)
    with torch.no_grad():
        expected = peft_model(**inputs).logits_per_video
    state = {k: v for k, v in peft_model.state_dict().items() if "lora_" in k}
    peft_config = to_peft_config(XClipAdapterConfig.for_method("lora"))
    peft_config.task_type = "FEATURE_EXTRACTION"
    other = get_peft_model(tiny_model(tokenizer), peft_config)
    missing = other.load_state_dict(state, strict=False).unexpected_keys
    assert not missing
    with torch.no_grad():
        torch.testing.assert_close(other(**inputs).logits_per_video, expected)


def test_attention_mask_pooling_finds_the_eot(tokenizer, inputs):
    """With `inputs_embeds` (no ids), the text tower pools at the last attended token: the EOT, as with ids."""
    model = tiny_model(tokenizer)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    with torch.no_grad():
        from_ids = model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        embeds = model.get_input_embeddings()(ids)
        from_embeds = model.get_text_features(inputs_embeds=embeds, attention_mask=mask).pooler_output
    torch.testing.assert_close(from_embeds, from_ids)
    with pytest.raises(ValueError, match="attention_mask"):
        model.get_text_features(inputs_embeds=embeds)


def test_peft_prompt_tuning_trains_and_reloads(tokenizer, inputs, tmp_path):
    """peft's own PromptTuning (virtual tokens before the SOT) with task_type FEATURE_EXTRACTION: only the virtual
    tokens train, a step changes the logits, and the saved adapter reloads to identical logits."""
    from peft import PromptTuningConfig

    base_dir = tmp_path / "base"
    tiny_model(tokenizer).save_pretrained(base_dir)
    config = PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=3)
    peft_model = get_peft_model(XClipModel.from_pretrained(base_dir), config)
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable == ["prompt_encoder.default.embedding.weight"]

    batch = {**inputs, "labels": torch.tensor([0, 2])}
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=1.0)
    with torch.no_grad():
        before = peft_model(**inputs).logits_per_video
    peft_model(**batch).loss.backward()
    optimizer.step()
    peft_model.eval()
    with torch.no_grad():
        after = peft_model(**inputs).logits_per_video
    assert (after - before).abs().max() > 1e-4

    peft_model.save_pretrained(tmp_path / "adapter")
    restored = PeftModel.from_pretrained(XClipModel.from_pretrained(base_dir), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert (restored(**inputs).logits_per_video - after).abs().max() == 0


# ---------------------------------------------------------------------------------------------------------------
# Training mechanics
# ---------------------------------------------------------------------------------------------------------------


def test_parameter_groups_and_text_flag(tokenizer):
    peft_model = get_xclip_peft_model(
        tiny_model(tokenizer), XClipAdapterConfig.for_method(["lora", "coop", "prompt-generator"]), tokenizer=tokenizer
    )
    groups = parameter_groups(peft_model, {"lora": 1.0, "coop": 2.0, "prompt-generator": 3.0}, weight_decay=0.5)
    by_name = {}
    for group in groups:
        by_name.setdefault(group["name"], []).append(group)
    assert set(by_name) == {"lora", "coop", "prompt-generator"}
    assert all(g["weight_decay"] == 0.0 for g in by_name["coop"])
    trained = sum(p.numel() for g in groups for p in g["params"])
    assert trained == sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert text_is_trainable(peft_model)
    assert not text_is_trainable(get_xclip_peft_model(tiny_model(tokenizer), XClipAdapterConfig.for_method("lora")))


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def test_autocast_bf16_forward_backward(tokenizer, inputs):
    config = XClipAdapterConfig.for_method(["lora", "coop"], lora_text=True)
    peft_model = get_xclip_peft_model(tiny_model(tokenizer), config, tokenizer=tokenizer).train()
    _perturb_trainable(peft_model)
    labels = torch.tensor([0, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = peft_model(**inputs, labels=labels)
    assert output.logits_per_video.dtype == torch.bfloat16
    assert output.loss.dtype == torch.float32 and torch.isfinite(output.loss)
    output.loss.backward()
    grads = _grads(peft_model)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert set(grads) == set(trainable)
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert any("prompt_context" in n and g.abs().sum() > 0 for n, g in grads.items())
    assert any("text_model" in n and "lora_B" in n and g.abs().sum() > 0 for n, g in grads.items())


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(tokenizer, inputs, use_reentrant):
    config = XClipAdapterConfig.for_method("lora", lora_text=True)
    labels = torch.tensor([1, 0])

    def gradients(checkpointing: bool):
        peft_model = get_xclip_peft_model(tiny_model(tokenizer), config).train()
        _perturb_trainable(peft_model)
        if checkpointing:
            enable_gradient_checkpointing(peft_model, use_reentrant=use_reentrant)
        peft_model(**inputs, labels=labels).loss.backward()
        return _grads(peft_model)

    plain, checkpointed = gradients(False), gradients(True)
    assert set(checkpointed) == set(plain)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-4, atol=1e-6)


def test_reentrant_checkpointing_needs_input_grads(tokenizer, inputs):
    """With use_reentrant=True and frozen embeddings, the checkpointed layers' LoRA weights get no gradient unless
    the embedding outputs require grad (`enable_input_require_grads`, which `enable_gradient_checkpointing` and
    transformers' own checkpointing switch call)."""
    peft_model = get_xclip_peft_model(tiny_model(tokenizer), XClipAdapterConfig.for_method("lora")).train()
    enable_gradient_checkpointing(peft_model, use_reentrant=True)
    peft_model.get_base_model().disable_input_require_grads()
    # every LoRA layer of this adapter sits in a checkpointed layer: nothing in the loss requires grad any more
    with pytest.warns(UserWarning, match="requires_grad"), pytest.raises(RuntimeError, match="does not require grad"):
        peft_model(**inputs, labels=torch.tensor([1, 0])).loss.backward()

    peft_model.zero_grad()
    enable_gradient_checkpointing(peft_model, use_reentrant=True)
    peft_model(**inputs, labels=torch.tensor([1, 0])).loss.backward()
    vision = {n: p.grad for n, p in peft_model.named_parameters() if "vision_model" in n and p.requires_grad}
    assert all(grad is not None and grad.abs().sum() > 0 for name, grad in vision.items() if "lora_B" in name)


def test_peft_files_have_no_pickles(tokenizer, tmp_path):
    peft_model = get_xclip_peft_model(tiny_model(tokenizer), XClipAdapterConfig.for_method("coop"), tokenizer=tokenizer)
    peft_model.save_pretrained(tmp_path)
    assert sorted(p.name for p in Path(tmp_path).iterdir() if p.suffix in (".bin", ".pt", ".pth")) == []
