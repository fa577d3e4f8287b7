"""Core model tests: parity with transformers' XCLIPModel, any frame count, losses, round trips, bad input."""

import copy
import os

import pytest
import torch
import transformers
from safetensors.torch import load_file
from testing_utils import XClipModelTester, randomise_

from hf_xclip import XClipConfig, XClipModel, XClipTextConfig, XClipTextModel, XClipVisionConfig, XClipVisionModel


@pytest.fixture(scope="module")
def tester() -> XClipModelTester:
    return XClipModelTester()


def transformers_pair(tester: XClipModelTester, tmp_path, attn: str = "eager", seed: int = 0):
    """A random transformers XCLIPModel and our XClipModel loaded from its saved directory."""
    torch.manual_seed(seed)
    reference = randomise_(transformers.XCLIPModel(tester.transformers_config()), seed)
    reference.save_pretrained(tmp_path)
    reference = transformers.XCLIPModel.from_pretrained(tmp_path, attn_implementation=attn).eval()
    ours = XClipModel.from_pretrained(tmp_path, attn_implementation=attn).eval()
    return reference, ours


PARITY_CONFIGS = {
    "tiny": {},
    "wide_heads": dict(projection_dim=192, mit_heads=3, prompt_heads=3, vision_width=128, vision_heads=2),
    "deep_mit_one_prompt_layer": dict(mit_layers=2, prompt_layers=1, num_frames=6, patch_size=10),
}


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", sorted(PARITY_CONFIGS))
def test_logits_match_transformers_xclip(name, attn, tmp_path):
    tester = XClipModelTester(**PARITY_CONFIGS[name])
    reference, ours = transformers_pair(tester, tmp_path, attn)
    input_ids, pixel_values = tester.input_ids(), tester.pixel_values()
    with torch.no_grad():
        expected = reference(input_ids=input_ids, pixel_values=pixel_values)
        actual = ours(input_ids=input_ids, pixel_values=pixel_values)
    torch.testing.assert_close(actual.logits_per_video, expected.logits_per_video, atol=1e-5, rtol=0)
    torch.testing.assert_close(actual.logits_per_text, expected.logits_per_text, atol=1e-5, rtol=0)
    torch.testing.assert_close(actual.video_embeds, expected.video_embeds, atol=1e-6, rtol=0)
    torch.testing.assert_close(actual.text_embeds, expected.text_embeds, atol=1e-6, rtol=0)


def test_eager_and_sdpa_agree(tester):
    torch.manual_seed(0)
    config = tester.config()
    eager = randomise_(XClipModel(config)).eval()
    eager.set_attn_implementation("eager")
    sdpa = copy.deepcopy(eager)
    sdpa.set_attn_implementation("sdpa")
    for module in sdpa.modules():
        if hasattr(module, "config") and hasattr(module.config, "_attn_implementation"):
            assert module.config._attn_implementation == "sdpa", type(module).__name__
    with torch.no_grad():
        a = eager(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
        b = sdpa(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_state_dict_keys_are_transformers_keys(tester, tmp_path):
    reference = transformers.XCLIPModel(tester.transformers_config())
    XClipModel(tester.config()).save_pretrained(tmp_path)
    saved = load_file(os.path.join(tmp_path, "model.safetensors"))
    assert set(saved) == set(reference.state_dict())


def test_transformers_loads_our_checkpoint(tester, tmp_path):
    torch.manual_seed(0)
    ours = randomise_(XClipModel(tester.config())).eval()
    ours.save_pretrained(tmp_path)
    reference, info = transformers.XCLIPModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        a = ours(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
        b = reference.eval()(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_loads_2022_hub_layout_with_pytorch_model_bin(tester, tmp_path):
    """The microsoft/xclip-* repos: model_type `xclip`, `pytorch_model.bin` with legacy position_ids buffers."""
    reference = randomise_(transformers.XCLIPModel(tester.transformers_config())).eval()
    state_dict = dict(reference.state_dict())
    state_dict["text_model.embeddings.position_ids"] = torch.arange(tester.seq_length)[None]
    num_positions = (tester.image_size // 6) ** 2 + 1
    state_dict["vision_model.embeddings.position_ids"] = torch.arange(num_positions)[None]
    torch.save(state_dict, tmp_path / "pytorch_model.bin")
    config = tester.transformers_config().to_dict()
    config["text_config"]["eos_token_id"] = 2  # what the 2022 configs carry
    (tmp_path / "config.json").write_text(transformers.XCLIPConfig(**config).to_json_string())
    ours, info = XClipModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert ours.config.model_type == "hf_xclip"
    assert ours.config.text_config.eos_token_id == tester.vocab_size - 1
    with torch.no_grad():
        a = ours.eval()(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
        b = reference(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_transformers_default_heads_are_corrected_for_wide_models():
    config = transformers.XCLIPConfig(projection_dim=768, vision_config={"mit_hidden_size": 768}).to_dict()
    assert config["prompt_num_attention_heads"] == 8
    ours = XClipConfig.from_dict(config)
    assert ours.prompt_num_attention_heads == 12
    assert ours.vision_config.mit_num_attention_heads == 12
    assert XClipConfig.from_dict(transformers.XCLIPConfig().to_dict()).prompt_num_attention_heads == 8


def test_save_and_reload_round_trip(tester, tmp_path):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config())).eval()
    model.save_pretrained(tmp_path)
    reloaded = XClipModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        a = model(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
        b = reloaded(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
    assert torch.equal(a, b)


def test_auto_classes(tester, tmp_path):
    XClipModel(tester.config()).save_pretrained(tmp_path)
    config = transformers.AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, XClipConfig)
    assert isinstance(transformers.AutoModel.from_pretrained(tmp_path), XClipModel)
    assert isinstance(transformers.AutoModel.from_config(XClipTextConfig(**tester.text)), XClipTextModel)
    assert isinstance(transformers.AutoModel.from_config(XClipVisionConfig(**tester.vision)), XClipVisionModel)


@pytest.mark.parametrize("num_frames", [1, 3, 4, 7])
def test_each_video_scores_as_it_does_alone(tester, num_frames):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config())).eval()
    input_ids = tester.input_ids()
    pixel_values = tester.pixel_values(batch_size=3, num_frames=num_frames)
    with torch.no_grad():
        batched = model(input_ids=input_ids, pixel_values=pixel_values).logits_per_video
        alone = torch.cat(
            [model(input_ids=input_ids, pixel_values=pixel_values[i : i + 1]).logits_per_video for i in range(3)]
        )
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_other_frame_counts_change_the_result_only_through_the_frames(tester):
    """Frames are grouped per video: repeating every frame twice must not leak content across videos."""
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config())).eval()
    pixel_values = tester.pixel_values(batch_size=2, num_frames=8)
    swapped = pixel_values.clone()
    swapped[1] = tester.pixel_values(batch_size=1, num_frames=8, seed=9)[0]
    with torch.no_grad():
        a = model(input_ids=tester.input_ids(), pixel_values=pixel_values).logits_per_video
        b = model(input_ids=tester.input_ids(), pixel_values=swapped).logits_per_video
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)
    assert not torch.allclose(a[1], b[1])


def test_mit_position_embedding_interpolation(tester):
    model = XClipModel(tester.config())
    pos = model.mit.position_embedding
    assert model.mit.position_embedding_for(tester.num_frames) is pos
    resized = model.mit.position_embedding_for(2 * tester.num_frames)
    assert resized.shape == (1, 2 * tester.num_frames, pos.shape[-1])
    # linear interpolation with align_corners=False: doubling the length repeats-and-blends neighbours
    torch.testing.assert_close(resized[0, 0], pos[0, 0])
    torch.testing.assert_close(resized[0, -1], pos[0, -1])


def test_precomputed_text_embeds_give_the_same_logits(tester):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config())).eval()
    input_ids = tester.input_ids(num_texts=5)
    with torch.no_grad():
        text_embeds = model.get_text_features(input_ids=input_ids).pooler_output
        full = model(input_ids=input_ids, pixel_values=tester.pixel_values()).logits_per_video
        cached = model(text_embeds=text_embeds, pixel_values=tester.pixel_values()).logits_per_video
        other_videos = model(text_embeds=text_embeds, pixel_values=tester.pixel_values(batch_size=1, seed=5))
    assert text_embeds.shape == (5, tester.top["projection_dim"])
    assert torch.equal(full, cached)
    assert other_videos.logits_per_video.shape == (1, 5)
    assert other_videos.text_model_output is None


def test_video_features_match_forward(tester):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config())).eval()
    pixel_values = tester.pixel_values()
    with torch.no_grad():
        video = model.get_video_features(pixel_values)
        out = model(input_ids=tester.input_ids(), pixel_values=pixel_values)
    assert video.prompt_features is None
    normalised = video.pooler_output / video.pooler_output.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(normalised, out.video_embeds)
    assert video.frame_embeds.shape == (2, tester.num_frames, tester.top["projection_dim"])


def test_class_label_loss_with_label_smoothing(tester):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config(label_smoothing=0.1))).eval()
    labels = torch.tensor([2, 0])
    out = model(input_ids=tester.input_ids(num_texts=3), pixel_values=tester.pixel_values(), labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits_per_video, labels, label_smoothing=0.1)
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert model.prompts_generator.alpha.grad is not None


def test_multi_label_loss_is_binary_cross_entropy(tester):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config())).eval()
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    out = model(input_ids=tester.input_ids(num_texts=3), pixel_values=tester.pixel_values(), labels=targets)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits_per_video, targets)
    torch.testing.assert_close(out.loss, expected)


def test_contrastive_loss_pairs_videos_with_texts(tester):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config())).eval()
    out = model(input_ids=tester.input_ids(num_texts=2), pixel_values=tester.pixel_values(), return_loss=True)
    targets = torch.arange(2)
    logits = out.logits_per_video
    expected = (
        torch.nn.functional.cross_entropy(logits, targets) + torch.nn.functional.cross_entropy(logits.T, targets)
    ) / 2
    torch.testing.assert_close(out.loss, expected)
    with pytest.raises(ValueError, match="as many texts as videos"):
        model(input_ids=tester.input_ids(num_texts=3), pixel_values=tester.pixel_values(), return_loss=True)


@pytest.mark.parametrize(
    "labels, message",
    [(torch.tensor([0, 1, 2]), "integer labels"), (torch.zeros(2, 4), "multi-label")],
)
def test_bad_labels_raise(tester, labels, message):
    model = XClipModel(tester.config())
    with pytest.raises(ValueError, match=message):
        model(input_ids=tester.input_ids(num_texts=3), pixel_values=tester.pixel_values(), labels=labels)


def test_eos_pooling_survives_added_tokens(tester):
    """After resizing the vocabulary, an added token with a larger id must not move the pooled position."""
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config())).eval()
    input_ids = tester.input_ids(num_texts=2)
    with torch.no_grad():
        before = model.get_text_features(input_ids=input_ids).pooler_output
        model.resize_token_embeddings(tester.vocab_size + 5)
        assert model.get_input_embeddings().weight.shape[0] == tester.vocab_size + 5
        with_new_token = input_ids.clone()
        eot = (input_ids == tester.vocab_size - 1).int().argmax(-1)
        with_new_token[0, eot[0] + 1] = tester.vocab_size + 3  # an added token after EOT (a padding slot)
        after = model.get_text_features(input_ids=with_new_token).pooler_output
    torch.testing.assert_close(before, after)


def test_input_embeddings_accessors(tester):
    model = XClipModel(tester.config())
    embedding = torch.nn.Embedding(tester.vocab_size, tester.text["hidden_size"])
    model.set_input_embeddings(embedding)
    assert model.get_input_embeddings() is embedding
    assert model.text_model.embeddings.token_embedding is embedding


def test_inputs_embeds_match_input_ids(tester):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config())).eval()
    input_ids = tester.input_ids()
    with torch.no_grad():
        embeds = model.get_input_embeddings()(input_ids)
        a = model.get_text_features(input_ids=input_ids).pooler_output
        b = model.get_text_features(input_ids=input_ids, inputs_embeds=embeds).pooler_output
    torch.testing.assert_close(a, b)


def test_peft_reachable_modules(tester):
    model = XClipModel(tester.config())
    names = dict(model.named_modules())
    assert isinstance(names["prompts_visual_proj"], torch.nn.Module)
    assert isinstance(names["logit_scale_module"], torch.nn.Module)
    assert model.prompts_visual_projection is model.prompts_visual_proj.weight
    assert model.logit_scale is model.logit_scale_module.logit_scale


def test_gradient_checkpointing_gives_same_gradients(tester):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config()))
    model.train()
    labels = torch.tensor([1, 2])

    def grads(m):
        m.zero_grad()
        m(input_ids=tester.input_ids(), pixel_values=tester.pixel_values(), labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    plain = grads(model)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert model.vision_model.encoder.layers[0].gradient_checkpointing
    checkpointed = grads(model)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], atol=1e-6, rtol=1e-5)


def test_output_hidden_states_and_attentions(tester):
    model = XClipModel(tester.config()).eval()
    model.set_attn_implementation("eager")
    out = model(
        input_ids=tester.input_ids(),
        pixel_values=tester.pixel_values(),
        output_hidden_states=True,
        output_attentions=True,
    )
    layers = tester.text["num_hidden_layers"]
    assert len(out.vision_model_output.hidden_states) == layers + 1
    assert len(out.text_model_output.attentions) == layers


@pytest.mark.slow
def test_torch_compile_matches_eager(tester):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config())).eval()
    compiled = torch.compile(model)
    with torch.no_grad():
        a = model(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
        b = compiled(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_cpu_bf16_autocast_forward_backward(tester):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=tester.input_ids(), pixel_values=tester.pixel_values(), labels=torch.tensor([0, 1]))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert torch.isfinite(model.visual_projection.weight.grad).all()


def test_vificlip_style_model_without_mit_and_prompts(tester):
    config = tester.config(video_pooling="mean", use_prompt_generator=False)
    config.vision_config.use_cross_frame_attention = False
    model = XClipModel(config).eval()
    names = {name for name, _ in model.named_parameters()}
    assert not any(n.startswith(("mit.", "prompts_")) or ".message_" in n for n in names)
    pixel_values = tester.pixel_values()
    with torch.no_grad():
        out = model(input_ids=tester.input_ids(), pixel_values=pixel_values)
        frames = model.vision_model(pixel_values).pooler_output
    expected = model.visual_projection(frames).view(2, tester.num_frames, -1).mean(1)
    torch.testing.assert_close(out.video_embeds, expected / expected.norm(dim=-1, keepdim=True))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(text_config={"hidden_size": 30, "num_attention_heads": 4}), "num_attention_heads"),
        (dict(vision_config={"hidden_size": 50, "num_attention_heads": 3}), "num_attention_heads"),
        (dict(projection_dim=64, vision_config={"mit_hidden_size": 32}), "mit_hidden_size"),
        (
            dict(projection_dim=96, prompt_num_attention_heads=5, vision_config={"mit_hidden_size": 96}),
            "prompt_num_attention_heads",
        ),
        (dict(vision_config={"image_size": 30, "patch_size": 7}), "patch_size"),
        (dict(label_smoothing=1.5), "label_smoothing"),
    ],
)
def test_bad_configs_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        XClipConfig(**kwargs)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((2, 3, 30, 30), "num_frames"),
        ((2, 4, 30, 30, 3, 1), "batch_size, num_frames"),
        ((2, 4, 1, 30, 30), "channels"),
        ((2, 4, 3, 32, 32), "32x32"),
        ((0, 4, 3, 30, 30), "empty"),
    ],
)
def test_bad_pixel_values_raise(tester, shape, message):
    model = XClipModel(tester.config())
    with pytest.raises(ValueError, match=message):
        model(input_ids=tester.input_ids(), pixel_values=torch.zeros(shape))


def test_flat_frames_need_matching_num_frames(tester):
    model = XClipVisionModel(XClipVisionConfig(**tester.vision))
    with pytest.raises(ValueError, match="not a multiple of num_frames"):
        model(torch.zeros(6, 3, 30, 30), num_frames=4)
    out = model(torch.zeros(8, 3, 30, 30), num_frames=4)
    assert out.pooler_output.shape == (8, tester.vision["hidden_size"])


def test_bad_text_inputs_raise(tester):
    model = XClipModel(tester.config())
    with pytest.raises(ValueError, match="input_ids"):
        model(pixel_values=tester.pixel_values())
    with pytest.raises(ValueError, match="text_embeds must have shape"):
        model(text_embeds=torch.zeros(3, 7), pixel_values=tester.pixel_values())
    with pytest.raises(ValueError, match="at most"):
        model(input_ids=torch.zeros(2, tester.seq_length + 1, dtype=torch.long), pixel_values=tester.pixel_values())


def test_initialisation_follows_the_original(tester):
    """Message modules keep torch's defaults (the original builds nn.Linear / nn.MultiheadAttention), the patch
    projection is torch.randn, the MIT and the prompt generator use truncated normal 0.02, CLIP's scheme elsewhere."""
    torch.manual_seed(0)
    config = tester.config(projection_dim=64)
    model = XClipModel(config)
    width = config.vision_config.hidden_size
    layer = model.vision_model.encoder.layers[0]
    bound = (6.0 / (4 * width)) ** 0.5
    q = layer.message_attn.q_proj.weight
    assert q.abs().max() <= bound and q.abs().max() > 0.8 * bound
    assert torch.count_nonzero(layer.message_attn.q_proj.bias) == 0
    assert 0.8 < model.prompts_visual_proj.weight.std() < 1.2
    mit_q = model.mit.encoder.layers[0].self_attn.q_proj.weight
    assert 0.015 < mit_q.std() < 0.025  # timm-style trunc_normal_(std=0.02) truncates at +-2 (absolute)
    expected_std = width**-0.5
    assert 0.7 * expected_std < model.visual_projection.weight.std() < 1.3 * expected_std
    assert torch.equal(
        model.prompts_generator.alpha, torch.full_like(model.prompts_generator.alpha, config.prompt_alpha)
    )
