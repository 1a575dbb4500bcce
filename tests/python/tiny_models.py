"""Tiny random transformers models (built locally from configs, nothing downloaded) and a
batch of inputs for each, shared by test_models.py and train_tiny.py. Small enough for tigon's
CPU interpreter: hidden 32, one or two layers, vocabulary 128, 8 tokens, one 8x8 image."""
import torch

# sizes, read at call time (train_tiny.py --big raises them)
VOCAB = 128
SEQ = 8
BATCH = 2
HIDDEN = 32


def _text_kwargs(**extra):
    kw = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2,
              num_attention_heads=4,
              num_key_value_heads=2, head_dim=HIDDEN // 4, max_position_embeddings=max(64, 2 * SEQ), rms_norm_eps=1e-6,
              tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    kw.update(extra)
    return kw


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    return LlamaForCausalLM, LlamaConfig(**_text_kwargs())


def _mistral():
    from transformers import MistralConfig, MistralForCausalLM
    return MistralForCausalLM, MistralConfig(**_text_kwargs(sliding_window=None))


def _qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    return Qwen2ForCausalLM, Qwen2Config(**_text_kwargs())


def _qwen3():
    from transformers import Qwen3Config, Qwen3ForCausalLM
    return Qwen3ForCausalLM, Qwen3Config(**_text_kwargs())


def _gemma():
    from transformers import GemmaConfig, GemmaForCausalLM
    return GemmaForCausalLM, GemmaConfig(**_text_kwargs(hidden_act="gelu_pytorch_tanh"))


# one image of 8x8 pixels in 2x2 patches: a 4x4 grid, merged 2x2 into 4 tokens; the special
# tokens are the last ids of the vocabulary, text tokens are drawn below them
GRID = (1, 4, 4)


def _special():
    return dict(image_token_id=VOCAB - 8, vision_start_token_id=VOCAB - 7, vision_end_token_id=VOCAB - 6,
                video_token_id=VOCAB - 5)

PATCH, TEMPORAL, MERGE = 2, 2, 2


def _vl_text(**extra):
    half = HIDDEN // 8                  # head_dim / 2, split over (temporal, height, width)
    kw = _text_kwargs(head_dim=None, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                      "mrope_section": [half - 2 * (half // 3), half // 3, half // 3]})
    kw.pop("head_dim")
    kw.update(extra)
    return kw


def _qwen2_vl():
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    cfg = Qwen2VLConfig(
        text_config=_vl_text(),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=HIDDEN, num_heads=2, mlp_ratio=2, in_channels=3,
                           patch_size=PATCH, spatial_merge_size=MERGE, temporal_patch_size=TEMPORAL),
        **_special())
    return Qwen2VLForConditionalGeneration, cfg


def _qwen2_5_vl():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    cfg = Qwen2_5_VLConfig(
        text_config=_vl_text(),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3,
                           patch_size=PATCH, spatial_merge_size=MERGE, temporal_patch_size=TEMPORAL,
                           out_hidden_size=HIDDEN, window_size=8, fullatt_block_indexes=[1]),
        **_special())
    return Qwen2_5_VLForConditionalGeneration, cfg


def _vit():
    from transformers import ViTConfig, ViTForImageClassification
    cfg = ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=64, num_labels=5)
    return ViTForImageClassification, cfg


MODELS = {"llama": _llama, "mistral": _mistral, "qwen2": _qwen2, "qwen3": _qwen3, "gemma": _gemma,
          "qwen2_vl": _qwen2_vl, "qwen2_5_vl": _qwen2_5_vl, "vit": _vit}


def build(name: str, seed: int = 0, dtype=torch.float32, device="cpu", attn="eager"):
    """A tiny model of the given type, random weights from seed, in train mode."""
    cls, cfg = MODELS[name]()
    cfg._attn_implementation = attn
    torch.manual_seed(seed)
    model = cls(cfg)
    _perturb_norms(model, seed)
    return model.to(device=device, dtype=dtype).train()


def build_like(name: str, reference, dtype=None, device=None, attn="eager"):
    """A model of the same type with the reference's weights (e.g. after tigon.apply)."""
    cls, cfg = MODELS[name]()
    cfg._attn_implementation = attn
    model = cls(cfg)
    model.load_state_dict(reference.state_dict())
    p = next(reference.parameters())
    return model.to(device=device or p.device, dtype=dtype or p.dtype).train()


@torch.no_grad()
def _perturb_norms(model, seed):
    """Norm weights start at 1 (0 for Gemma) and biases at 0: move them off, or a wrong
    weight / offset / bias would go unseen."""
    g = torch.Generator().manual_seed(seed + 1)
    for name, p in model.named_parameters():
        if "norm" in name.lower() or "ln_q" in name:
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def inputs(name: str, seed: int = 0, device="cpu", dtype=torch.float32, labels=True):
    """One batch for the model: token ids (with an image for the VL models) and labels."""
    g = torch.Generator().manual_seed(seed)
    if name == "vit":
        batch = {"pixel_values": torch.randn(BATCH, 3, 16, 16, generator=g).to(device, dtype)}
        if labels:
            batch["labels"] = torch.randint(0, 5, (BATCH,), generator=g).to(device)
        return batch
    ids = torch.randint(3, VOCAB - 8, (BATCH, SEQ), generator=g)
    batch = {"input_ids": ids}
    if name in ("qwen2_vl", "qwen2_5_vl"):
        n_img = GRID[0] * GRID[1] * GRID[2] // MERGE ** 2
        sp = _special()
        seq = torch.randint(3, VOCAB - 8, (BATCH, SEQ + n_img + 2), generator=g)
        seq[0, 1] = sp["vision_start_token_id"]        # the image in the first sample only
        seq[0, 2:2 + n_img] = sp["image_token_id"]
        seq[0, 2 + n_img] = sp["vision_end_token_id"]
        batch["input_ids"] = ids = seq
        batch["mm_token_type_ids"] = (seq == sp["image_token_id"]).int()
        n_patches = GRID[0] * GRID[1] * GRID[2]
        batch["pixel_values"] = torch.randn(n_patches, 3 * TEMPORAL * PATCH * PATCH, generator=g).to(dtype)
        batch["image_grid_thw"] = torch.tensor([GRID])
    batch["attention_mask"] = torch.ones_like(ids)
    if labels:
        lab = ids.clone()
        lab[:, :2] = -100                              # a prompt that is not scored
        if name in ("qwen2_vl", "qwen2_5_vl"):
            lab[ids == sp["image_token_id"]] = -100
        batch["labels"] = lab
    return {k: v.to(device) for k, v in batch.items()}
