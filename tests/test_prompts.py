"""Learned prompts a model owns (IVLP: vision tokens after the patches, deep vision and text prompts in later layers):
invisible by default, placed as the original ViFi-CLIP places them, saved and reloaded with the config.

The CoOp context insertion itself is specified in test_peft.py; the original's numbers in test_conversion.py.
"""

import pytest
import torch
from testing_utils import XClipModelTester, randomise_

from hf_xclip import XClipConfig, XClipModel


@pytest.fixture(scope="module")
def tester() -> XClipModelTester:
    return XClipModelTester(num_layers=3, seq_length=16)


def prompted_config(tester: XClipModelTester, text=(3, 2), vision=(2, 2), **overrides) -> XClipConfig:
    config = tester.config(**overrides)
    config.text_config.num_prompt_tokens, config.text_config.prompt_depth = text
    config.vision_config.num_prompt_tokens, config.vision_config.prompt_depth = vision
    return config


def prompted_model(tester: XClipModelTester, seed: int = 0, **kwargs) -> XClipModel:
    torch.manual_seed(seed)
    config = prompted_config(tester, **kwargs)
    return randomise_(XClipModel(XClipConfig.from_dict(config.to_dict())), seed).eval()


def test_a_model_without_prompts_has_no_prompt_keys_and_empty_modules(tester):
    model = XClipModel(tester.config()).eval()
    prompt_modules = ("prompt_tokens", "deep_prompts", "prompt_context")
    assert not any(part in key for key in model.state_dict() for part in prompt_modules)
    hidden = torch.randn(2, 5, 32)
    vision = model.vision_model
    assert vision.prompt_tokens(hidden) is hidden
    assert all(
        module(index, hidden) is hidden
        for module in (vision.deep_prompts, model.text_model.deep_prompts)
        for index in range(3)
    )


def test_vision_prompts_are_appended_and_replaced_layer_by_layer(tester):
    """VPT: tokens after the patch tokens (no position embedding, before the pre-LayerNorm); layers 1..depth-1
    replace the last n positions with their own tokens; later layers keep what the previous layer produced."""
    model = prompted_model(tester, vision=(2, 2))  # 3 layers: own tokens before layers 0 and 1, not 2
    vision = model.vision_model
    pixel_values = tester.pixel_values()
    with torch.no_grad():
        out = vision(pixel_values)
        frames = pixel_values.flatten(0, 1)
        x = vision.embeddings(frames)
        num_tokens = x.shape[1]
        x = torch.cat([x, vision.prompt_tokens.tokens.expand(x.shape[0], -1, -1)], dim=1)
        x = vision.pre_layernorm(x)
        for index, layer in enumerate(vision.encoder.layers):
            if index == 1:
                x = torch.cat([x[:, :-2], vision.deep_prompts.tokens[0].expand(x.shape[0], -1, -1)], dim=1)
            x = layer(x, tester.num_frames)
    assert out.last_hidden_state.shape[1] == num_tokens + 2
    torch.testing.assert_close(out.last_hidden_state, x, rtol=0, atol=0)
    torch.testing.assert_close(out.pooler_output, vision.post_layernorm(x[:, 0]), rtol=0, atol=0)


def test_deep_text_prompts_replace_the_context_positions(tester):
    model = prompted_model(tester, text=(3, 3))  # the context before layer 0, own vectors before layers 1 and 2
    text = model.text_model
    input_ids = tester.input_ids()
    with torch.no_grad():
        out = text(input_ids=input_ids)
        ids, embeds, _ = text.prompt_context(
            input_ids, None, None, text.embeddings.token_embedding, tester.vocab_size - 1
        )
        x = text.embeddings(input_ids=ids, inputs_embeds=embeds)
        length = x.shape[1]
        mask = torch.full((length, length), float("-inf")).triu(1)[None, None]
        for index, layer in enumerate(text.encoder.layers):
            if index > 0:
                x = torch.cat([x[:, :1], text.deep_prompts.tokens[index - 1].expand(3, -1, -1), x[:, 4:]], dim=1)
            x = layer(x, mask)
        x = text.final_layer_norm(x)
    eos = (ids == tester.vocab_size - 1).int().argmax(-1)
    torch.testing.assert_close(out.pooler_output, x[torch.arange(3), eos], rtol=1e-6, atol=1e-6)


def test_prompts_act_on_the_logits_and_get_gradients(tester):
    model = prompted_model(tester)
    inputs = dict(input_ids=tester.input_ids(), pixel_values=tester.pixel_values())
    out = model(**inputs, labels=torch.tensor([0, 2]))
    out.loss.backward()
    prompts = {
        name: p
        for name, p in model.named_parameters()
        if "prompt_tokens" in name or "deep_prompts" in name or "prompt_context" in name
    }
    assert len(prompts) == 4 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in prompts.values())
    with torch.no_grad():
        model.vision_model.deep_prompts.tokens.add_(torch.randn_like(model.vision_model.deep_prompts.tokens))
        assert (model(**inputs).logits_per_video - out.logits_per_video).abs().max() > 1e-4


def test_prompt_generator_attends_to_the_patches_only(tester):
    """With vision prompts on an X-CLIP model, the video-specific prompt generator still sees the patch tokens."""
    model = prompted_model(tester)
    pixel_values = tester.pixel_values()
    with torch.no_grad():
        video = model.get_video_features(pixel_values, output_prompt_features=True)
        patches = video.last_hidden_state[:, 1 : 1 + model.vision_model.embeddings.num_patches]
        expected = model._prompt_features(patches, 2, tester.num_frames)
    assert video.last_hidden_state.shape[1] == 1 + model.vision_model.embeddings.num_patches + 2
    torch.testing.assert_close(video.prompt_features, expected, rtol=0, atol=0)


def test_prompted_model_saves_and_reloads_with_its_config(tester, tmp_path):
    model = prompted_model(tester)
    model.save_pretrained(tmp_path)
    keys = set(model.state_dict())
    assert {
        "text_model.prompt_context.context",
        "text_model.deep_prompts.tokens",
        "vision_model.prompt_tokens.tokens",
        "vision_model.deep_prompts.tokens",
    } <= keys
    from transformers import AutoModel

    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.vision_config.num_prompt_tokens == 2 and reloaded.config.text_config.prompt_depth == 2
    inputs = dict(input_ids=tester.input_ids(), pixel_values=tester.pixel_values())
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).logits_per_video, model(**inputs).logits_per_video)


def test_fresh_prompts_start_like_the_originals(tester):
    """A config with prompts creates them with the original's N(0, 0.02) initialisation."""
    torch.manual_seed(0)
    model = XClipModel(prompted_config(tester, text=(8, 3), vision=(8, 3)))
    for tensor in (
        model.vision_model.prompt_tokens.tokens,
        model.vision_model.deep_prompts.tokens,
        model.text_model.prompt_context.context,
        model.text_model.deep_prompts.tokens,
    ):
        assert 0.01 < tensor.std().item() < 0.03 and tensor.abs().max() > 0


@pytest.mark.parametrize(
    "section, values, message",
    [
        ("vision_config", {"num_prompt_tokens": 2, "prompt_depth": 4}, "prompt_depth"),
        ("text_config", {"num_prompt_tokens": 2, "prompt_depth": 0}, "prompt_depth"),
        ("vision_config", {"num_prompt_tokens": -1}, "num_prompt_tokens"),
        ("text_config", {"num_prompt_tokens": 15}, "no room"),
    ],
)
def test_bad_prompt_configs_raise_naming_the_field(tester, section, values, message):
    config = tester.config().to_dict()
    config[section].update(values)
    with pytest.raises(ValueError, match=message):
        XClipConfig.from_dict(config)


def test_deep_text_prompts_must_match_the_context(tester):
    model = prompted_model(tester, text=(3, 2))
    model.text_model.prompt_context.set_context(torch.zeros(1, 2, 32))
    with pytest.raises(ValueError, match="deep text prompts have 3 tokens per layer but the prompt context has 2"):
        model(input_ids=tester.input_ids(), pixel_values=tester.pixel_values())
