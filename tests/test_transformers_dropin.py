"""Code written against transformers' X-CLIP runs unchanged on hf_xclip: tuple outputs in transformers' order,
flat frames grouped by `config.num_frames`, transformers' parameter names in `load_state_dict`, init scales from the
config, no deprecation warnings from our own calls. Each test compares with transformers' classes on the same
weights where transformers has the behaviour."""

import copy
import dataclasses
import math
import warnings

import pytest
import torch
import transformers
from test_modeling import transformers_pair
from testing_utils import XClipModelTester, randomise_
from transformers.models.x_clip.modeling_x_clip import XCLIPOutput

from hf_xclip import XClipModel, XClipOutput, XClipVisionConfig, XClipVisionModel
from hf_xclip.modeling_xclip import TRANSFORMERS_PARAMETER_RENAMES, XClipVideoOutput


@pytest.fixture(scope="module")
def tester() -> XClipModelTester:
    return XClipModelTester()


@pytest.fixture(scope="module")
def pair(tester, tmp_path_factory):
    """transformers' XCLIPModel and ours on the same random weights."""
    return transformers_pair(tester, tmp_path_factory.mktemp("pair"))


def assert_same_leaves(ours, theirs, where: str = "outputs") -> None:
    """Nested tuples of tensors: same structure, same values."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, torch.Tensor), f"{where}: {type(ours).__name__} where transformers has a tensor"
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0, msg=f"{where} differs")
        return
    assert isinstance(ours, tuple) and isinstance(theirs, tuple), f"{where}: {type(ours)} vs {type(theirs)}"
    assert len(ours) == len(theirs), f"{where}: {len(ours)} entries, transformers {len(theirs)}"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_same_leaves(a, b, f"{where}[{i}]")


# ------------------------------------------------------------------------------------------------ tuple outputs
def test_output_fields_are_in_transformers_order():
    ours = [field.name for field in dataclasses.fields(XClipOutput)]
    theirs = [field.name for field in dataclasses.fields(XCLIPOutput)]
    assert ours == theirs
    video = [field.name for field in dataclasses.fields(XClipVideoOutput)]
    assert video[:4] == [f.name for f in dataclasses.fields(transformers.modeling_outputs.BaseModelOutputWithPooling)]


def test_return_dict_false_gives_transformers_tuple(pair, tester):
    reference, ours = pair
    inputs = dict(input_ids=tester.input_ids(num_texts=2), pixel_values=tester.pixel_values(), return_loss=True)
    with torch.no_grad():
        expected = reference(**inputs, return_dict=False)
        got = ours(**inputs, return_dict=False)
        as_dict = ours(**inputs)
    assert isinstance(got, tuple)
    assert_same_leaves(got, expected)
    assert_same_leaves(got, as_dict.to_tuple())
    # positions are transformers' fields: loss, logits_per_text, text_embeds, text / vision outputs, logits_per_video
    torch.testing.assert_close(got[0], as_dict.loss)
    torch.testing.assert_close(got[1], as_dict.logits_per_text)
    torch.testing.assert_close(got[5], as_dict.logits_per_video)


def test_config_return_dict_false_gives_tuples(pair, tester):
    reference, ours = pair
    ours, reference = copy.deepcopy(ours), copy.deepcopy(reference)
    ours.config.return_dict = reference.config.return_dict = False
    input_ids, pixel_values = tester.input_ids(), tester.pixel_values()
    with torch.no_grad():
        assert_same_leaves(
            ours(input_ids=input_ids, pixel_values=pixel_values),
            reference(input_ids=input_ids, pixel_values=pixel_values),
        )
        assert_same_leaves(
            ours.get_text_features(input_ids=input_ids), reference.get_text_features(input_ids=input_ids)
        )
        video = ours.get_video_features(pixel_values)
        theirs = reference.get_video_features(pixel_values=pixel_values)
        # transformers' video output is the vision tower's (last_hidden_state, pooler_output): ours starts the same
        assert_same_leaves(video[:2], theirs)
        # an explicit return_dict wins over the config
        assert isinstance(ours(input_ids=input_ids, pixel_values=pixel_values, return_dict=True), XClipOutput)


def test_tuple_outputs_with_hidden_states_and_attentions(pair, tester):
    reference, ours = pair
    ours, reference = copy.deepcopy(ours), copy.deepcopy(reference)
    for model in (ours, reference):
        model.set_attn_implementation("eager")
    inputs = dict(
        input_ids=tester.input_ids(),
        pixel_values=tester.pixel_values(),
        output_hidden_states=True,
        output_attentions=True,
        return_dict=False,
    )
    with torch.no_grad():
        assert_same_leaves(ours(**inputs), reference(**inputs))
        video = ours.get_video_features(tester.pixel_values(), output_hidden_states=True)
    assert len(video.hidden_states) == tester.vision["num_hidden_layers"] + 1


def test_precomputed_text_embeds_tuple_skips_the_text_output(pair, tester):
    _, ours = pair
    with torch.no_grad():
        text_embeds = ours.get_text_features(input_ids=tester.input_ids()).pooler_output
        out = ours(text_embeds=text_embeds, pixel_values=tester.pixel_values())
        got = ours(text_embeds=text_embeds, pixel_values=tester.pixel_values(), return_dict=False)
    assert out.text_model_output is None
    assert_same_leaves(got, out.to_tuple())


# ----------------------------------------------------------------------------------------------- flat frames
def test_flat_frames_are_grouped_by_config_num_frames(pair, tester):
    reference, ours = pair
    pixel_values = tester.pixel_values(batch_size=3)
    flat = pixel_values.flatten(0, 1)
    with torch.no_grad():
        grouped = ours.vision_model(pixel_values)
        from_flat = ours.vision_model(flat)
        theirs = reference.vision_model(pixel_values=flat)
    assert torch.equal(from_flat.pooler_output, grouped.pooler_output)
    assert torch.equal(from_flat.last_hidden_state, grouped.last_hidden_state)
    torch.testing.assert_close(from_flat.pooler_output, theirs.pooler_output, atol=1e-5, rtol=0)


def test_flat_frames_give_the_logits_of_the_video_batch(pair, tester):
    """transformers' XCLIPModel.forward flattens the videos and runs the vision tower on flat frames; doing that
    with ours gives forward's logits exactly."""
    _, ours = pair
    pixel_values = tester.pixel_values(batch_size=2)
    batch_size, num_frames = pixel_values.shape[:2]
    input_ids = tester.input_ids()
    with torch.no_grad():
        expected = ours(input_ids=input_ids, pixel_values=pixel_values).logits_per_video
        frames = ours.vision_model(pixel_values.flatten(0, 1))
        frame_embeds = ours.visual_projection(frames.pooler_output).view(batch_size, num_frames, -1)
        video_embeds = ours.mit(frame_embeds).pooler_output
        prompt_features = ours._prompt_features(frames.last_hidden_state[:, 1:], batch_size, num_frames)
        text_embeds = ours.get_text_features(input_ids=input_ids).pooler_output
        logits, _ = ours.get_logits(video_embeds, text_embeds, prompt_features)
    assert torch.equal(logits, expected)


def test_flat_frames_that_do_not_divide_raise_naming_both_numbers(tester):
    model = XClipVisionModel(XClipVisionConfig(**tester.vision))
    with pytest.raises(ValueError, match=r"6 flat frames, not a multiple of config\.num_frames=4"):
        model(torch.zeros(6, 3, 30, 30))
    with pytest.raises(ValueError, match=r"6 flat frames, not a multiple of num_frames=4"):
        model(torch.zeros(6, 3, 30, 30), num_frames=4)
    assert model(torch.zeros(6, 3, 30, 30), num_frames=3).pooler_output.shape[0] == 6


# ---------------------------------------------------------------------------------------------- state dicts
def test_transformers_state_dict_loads_with_no_missing_or_unexpected_keys(pair, tester):
    reference, _ = pair
    fresh = XClipModel(tester.config()).eval()
    result = fresh.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert set(reference.state_dict()) - set(fresh.state_dict()) == set(TRANSFORMERS_PARAMETER_RENAMES)
    assert fresh.logit_scale.item() == reference.logit_scale.item()
    assert torch.equal(fresh.prompts_visual_projection, reference.prompts_visual_projection)
    with torch.no_grad():
        a = fresh(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
        b = reference(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_our_own_state_dict_still_loads_and_names_are_unchanged(tester):
    torch.manual_seed(0)
    model = randomise_(XClipModel(tester.config()))
    state = model.state_dict()
    assert "prompts_visual_proj.weight" in state and "logit_scale_module.logit_scale" in state
    fresh = XClipModel(tester.config())
    assert not fresh.load_state_dict(state).missing_keys
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())


def test_transformers_names_load_under_a_prefix(pair, tester):
    """An XClipModel inside another module (e.g. a task head) takes transformers' keys under its prefix."""
    reference, _ = pair
    wrapper = torch.nn.ModuleDict({"backbone": XClipModel(tester.config())})
    state = {f"backbone.{key}": value for key, value in reference.state_dict().items()}
    result = wrapper.load_state_dict(state)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(wrapper["backbone"].prompts_visual_projection, reference.prompts_visual_projection)


def test_both_names_for_one_parameter_raise(pair, tester):
    reference, _ = pair
    state = dict(reference.state_dict())
    state["logit_scale_module.logit_scale"] = state["logit_scale"].clone()
    with pytest.raises(ValueError, match="both `logit_scale`.*`logit_scale_module.logit_scale`"):
        XClipModel(tester.config()).load_state_dict(state)


def test_pipeline_converts_a_transformers_model_through_load_state_dict(pair, tester):
    from hf_xclip.loading import as_xclip_model

    reference, _ = pair
    converted = as_xclip_model(reference)
    assert isinstance(converted, XClipModel)
    with torch.no_grad():
        a = converted.eval()(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
        b = reference(input_ids=tester.input_ids(), pixel_values=tester.pixel_values()).logits_per_video
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ init scales
def zero_init(config):
    """transformers' `_config_zero_init`: every init range / factor of the config and its sub-configs -> 1e-10."""
    config = copy.deepcopy(config)
    for sub in (config, config.text_config, config.vision_config):
        for key in ("initializer_range", "initializer_factor"):
            if hasattr(sub, key):
                setattr(sub, key, 1e-10)
    return config


@pytest.mark.parametrize("variant", ["xclip", "vificlip", "learned_prompts"])
def test_zero_init_config_zeroes_every_weight_matrix(tester, variant):
    overrides = {} if variant == "xclip" else dict(video_pooling="mean", use_prompt_generator=False)
    config = tester.config(**overrides)
    if variant == "learned_prompts":  # IVLP: text context and vision prompt tokens, deep in both towers
        for sub in (config.text_config, config.vision_config):
            sub.num_prompt_tokens, sub.prompt_depth = 2, 2
    torch.manual_seed(0)
    model = XClipModel(zero_init(config))
    matrices = {name: p for name, p in model.named_parameters() if p.ndim >= 2}
    assert any(".message_fc." in name for name in matrices)
    assert variant != "xclip" or "mit.position_embedding" in matrices
    assert variant != "learned_prompts" or any("prompt" in name for name in matrices)
    for name, param in matrices.items():
        assert param.abs().max() < 1e-8, f"{name} is not zero-initialised: max {param.abs().max():.3g}"
    for name, param in model.named_parameters():  # transformers' test_initialization: means are 0 or 1
        if name.endswith("logit_scale"):
            assert param.item() == pytest.approx(math.log(1 / 0.07), abs=1e-3)
        elif name == "prompts_generator.alpha":
            assert param.mean().item() == pytest.approx(model.config.prompt_alpha)
        else:
            assert ((param.mean() * 1e9).round() / 1e9).item() in (0.0, 1.0), name


def test_init_scales_follow_the_config(tester):
    torch.manual_seed(0)
    config = tester.config(projection_dim=64, initializer_factor=2.0)
    config.vision_config.initializer_range = 0.05
    config.vision_config.initializer_factor = 3.0  # the vision tower initialises its layers with its own config
    model = XClipModel(config)
    mit_q = model.mit.encoder.layers[0].self_attn.q_proj.weight
    assert 0.08 < mit_q.std() < 0.12  # vision_config.initializer_range * initializer_factor
    prompt_q = model.prompts_generator.decoder[0].cross_attn.q_proj.weight
    assert 0.03 < prompt_q.std() < 0.05  # 0.02 * initializer_factor
    message_fc = model.vision_model.encoder.layers[0].message_fc.weight
    bound = 3.0 / math.sqrt(message_fc.shape[1])  # torch's Linear bound 1 / sqrt(fan_in), times the factor
    assert 0.9 * bound < message_fc.abs().max() <= bound


# ------------------------------------------------------------------------------------------------ warnings
def test_our_calls_raise_no_deprecation_warnings(pair, tester):
    _, ours = pair
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            ours(input_ids=tester.input_ids(), pixel_values=tester.pixel_values(), attention_mask=torch.ones(3, 12))
            ours.get_text_features(input_ids=tester.input_ids(), return_dict=False)
            ours.get_video_features(tester.pixel_values())
            ours.vision_model(tester.pixel_values().flatten(0, 1))
    deprecations = [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert not deprecations, [f"{w.filename}:{w.lineno}: {w.message}" for w in deprecations]
