"""Model and training configuration as dataclasses, and the named presets.

`paper` is the configuration of Khorrami et al. (2023): a wav2vec 2.0 base speech encoder whose layer 8
feeds the visually grounded (VGS) branch. `tiny` and `small` keep that structure (12 layers, VGS branch
after layer 8) with small widths and a log-mel front end: `tiny` (width 32) trains 15 epochs of the
embedded corpus in about 2 minutes on 2 CPU cores, `small` (width 64) takes about twice as long and
retrieves better. A run's configs are saved in its `config.json` and rebuilt from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelConfig", "TrainConfig", "PRESETS", "preset", "config_to_dict", "config_from_dict"]

# wav2vec 2.0's convolutional feature encoder: (channels, kernel, stride) per layer, 20 ms frames at 16 kHz.
WAV2VEC2_CONV_LAYERS = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and objective constants of the VGS+ model (see docs/model.md)."""

    # Feature encoder: "conv" is wav2vec 2.0's raw-waveform CNN, "logmel" a log-mel spectrogram
    # followed by strided convolutions to the same 20 ms frames.
    front_end: str = "conv"
    conv_layers: tuple[tuple[int, int, int], ...] = WAV2VEC2_CONV_LAYERS
    conv_bias: bool = False
    conv_norm: str = (
        "group_norm"  # wav2vec 2.0 base: "group_norm" (first layer); large: "layer_norm"
    )
    # The feature encoder's gradient is multiplied by this in training (wav2vec 2.0 base: 0.1;
    # 1.0 here so the paper preset trains as it always has).
    feature_grad_mult: float = 1.0
    n_mels: int = 80
    logmel_channels: int = 512
    sample_rate: int = 16000

    # Speech transformer (wav2vec 2.0 base: post-LN, conv positional embedding, CLS token).
    dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    ffn_dim: int = 3072
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    use_cls: bool = True
    layer_use: int = (
        8  # the VGS branch reads this layer's output; layers above it are the SSL decoder
    )
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    projection_dropout: float = 0.1

    # wav2vec 2.0 objective (loss_aud).
    mask_prob: float = 0.65
    mask_vgs_input: bool = (
        True  # the paper's code: the VGS branch sees the masked input in training
    )
    mask_length: int = 10
    num_negatives: int = 100
    logit_temperature: float = 0.1
    codebook_groups: int = 2
    codebook_entries: int = 320
    codevector_dim: int = 256
    final_dim: int = 256
    quantizer_temperature: tuple[float, float, float] = (
        2.0,
        0.5,
        0.999995,
    )  # start, end, decay/step
    diversity_weight: float = 0.1
    feature_penalty_weight: float = 10.0

    # Audio VGS branch: ResDAVEnet on layer-`layer_use` frames, then a transformer layer on its CLS.
    resdavenet_widths: tuple[int, ...] = (128, 256, 512, 768)
    resdavenet_blocks: tuple[int, ...] = (2, 2, 2, 2)
    resdavenet_kernel: int = 9
    audio_branch_layers: int = 1

    # Image branch: 36 region features + boxes -> CLS -> transformer layers -> MLP.
    region_dim: int = 2048
    num_regions: int = 36
    image_layers: int = 6
    branch_heads: int = 12

    # loss_av: masked margin softmax on image_cls @ audio_cls.T ("dot", as the paper's code) or "cosine".
    margin: float = 1.0
    score: str = "dot"
    # Initial std of the last layer of each retrieval head (the audio branch's out_proj, the image
    # MLP's last layer): small, so the scores start unsaturated. It sets their initial spread, which
    # shrinks with the embedding width (docs/model.md).
    head_init_std: float = 0.02

    @property
    def embed_dim(self) -> int:
        """Width of the shared retrieval space (audio and image CLS)."""
        return self.resdavenet_widths[-1]

    def __post_init__(self) -> None:
        problems = []
        if self.front_end not in ("conv", "logmel"):
            problems.append(f"front_end must be 'conv' or 'logmel', not {self.front_end!r}")
        if self.conv_norm not in ("group_norm", "layer_norm"):
            problems.append(
                f"conv_norm must be 'group_norm' or 'layer_norm', not {self.conv_norm!r}"
            )
        if not 1 <= self.layer_use <= self.num_layers:
            problems.append(f"layer_use={self.layer_use} is not a layer of 1..{self.num_layers}")
        if not 0.0 <= self.feature_grad_mult <= 1.0:
            problems.append(f"feature_grad_mult must be in [0, 1], not {self.feature_grad_mult}")
        if self.dim % self.num_heads:
            problems.append(f"dim={self.dim} is not divisible by num_heads={self.num_heads}")
        if self.embed_dim % self.branch_heads:
            problems.append(
                f"embed_dim={self.embed_dim} not divisible by branch_heads={self.branch_heads}"
            )
        if len(self.resdavenet_widths) != len(self.resdavenet_blocks):
            problems.append("resdavenet_widths and resdavenet_blocks differ in length")
        if self.codevector_dim % self.codebook_groups:
            problems.append("codevector_dim is not divisible by codebook_groups")
        if self.score not in ("dot", "cosine"):
            problems.append(f"score must be 'dot' or 'cosine', not {self.score!r}")
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings: Adam with decoupled weight decay, warm-up then linear decay, per stage."""

    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-6
    grad_clip: float = 1.0
    warmup_fraction: float = 0.1
    max_seconds: float = 8.0  # training crops; evaluation sees whole utterances
    seed: int = 0
    epochs_per_eval: int = 1
    eval_split: str = "val"  # the split whose recall is logged each evaluated epoch
    train_subset: int = 0  # train on the first N captions only (0: all); for smoke tests
    # Sort each run of this many batches by caption length before cutting batches (0: random
    # batches, as the paper's code): less padding, the same captions per epoch.
    length_bucket_batches: int = 0
    eval_batch_size: int = 64
    # A loss of weight 0 (logged, as the paper logs both curves, but never trained on) is computed on
    # every N-th batch of an epoch only, and its logged epoch mean is over those batches. 1: every
    # batch (the paper's code). Its forward is a quarter to a third of a single-objective step.
    inactive_loss_every: int = 1
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU; or "fp32" / "bf16"
    compile: bool = False
    schedule: str = "vgs+"
    stage_epochs: tuple[int, ...] = (70,)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.inactive_loss_every < 1:
            raise ValueError(f"inactive_loss_every must be >= 1, not {self.inactive_loss_every}")


_SMALL_MODEL = ModelConfig(
    front_end="logmel",
    n_mels=40,
    logmel_channels=128,
    dim=64,
    num_layers=12,
    num_heads=2,
    ffn_dim=128,
    pos_conv_kernel=32,
    pos_conv_groups=8,
    layer_use=8,
    dropout=0.0,  # 0.1 made epochs ~40% slower on the CPU and held-out recall lower after 15 epochs
    attention_dropout=0.0,
    projection_dropout=0.0,
    mask_prob=0.3,  # the VGS branch sees the masked input: at this scale 65% masking starves it
    num_negatives=20,
    codebook_groups=2,
    codebook_entries=32,
    codevector_dim=64,
    final_dim=64,
    quantizer_temperature=(2.0, 0.5, 0.999),
    resdavenet_widths=(64, 64, 128, 128),
    resdavenet_blocks=(1, 1, 1, 1),
    resdavenet_kernel=5,
    region_dim=2048,
    image_layers=2,
    branch_heads=4,
)
_SMALL_TRAIN = TrainConfig(
    batch_size=32,
    lr=3e-4,  # at 1e-3 the dot-product retrieval scores collapse to a constant within an epoch
    max_seconds=4.0,
    length_bucket_batches=16,
    # The logged loss of weight 0 from every 10th batch: 15 of an epoch's 150 on the default corpus,
    # a mean over 480 captions; on every batch it cost compact's W2V2 steps 30% more (docs/training.md).
    inactive_loss_every=10,
    schedule="vgs+",
    stage_epochs=(15,),
    eval_batch_size=64,
)
# `tiny` is `small` at half the widths (one attention head of 32), sized for ~2 minutes per 15 epochs
# of the embedded corpus on 2 CPU cores; at this width lr 1e-3 does not collapse and learns faster.
_TINY_MODEL = dataclasses.replace(
    _SMALL_MODEL,
    logmel_channels=64,
    dim=32,
    num_heads=1,
    ffn_dim=64,
    resdavenet_widths=(32, 32, 64, 64),
)
_TINY_TRAIN = dataclasses.replace(_SMALL_TRAIN, lr=1e-3)
# `compact` is the demo's preset: wider and shallower than `tiny` (width 64, 6 layers, the VGS branch
# after layer 4, as 8 of 12 in the paper) with a wider ResDAVEnet, and the VGS branch reads the
# unmasked input (the paper's text; its code masks it). On 1200 images it reached speech->image R@10
# 24.6% after 300 steps of clean speech where `tiny` reached 14.8% (docs/model.md).
_COMPACT_MODEL = dataclasses.replace(
    _TINY_MODEL,
    dim=64,
    num_heads=2,
    ffn_dim=128,
    num_layers=6,
    layer_use=4,
    resdavenet_widths=(64, 64, 128, 128),
    branch_heads=4,
    mask_vgs_input=False,
    # The paper's 65%: with the VGS branch on the unmasked input nothing starves, and on the default
    # corpus (seed 7, 6 epochs) it lowered W2V2's best read ABX error and raised VGS+'s test recall
    # from 35.1/37.0 to 40.2/47.5 R@10 (docs/model.md).
    mask_prob=0.65,
    # The paper's 0.02 at width 768 starts the scores of a batch with a spread (std) of 2.0; at
    # width 128 it gives 0.12, and the margin softmax sits at chance for epochs until the
    # embeddings grow. 0.08 starts compact at the paper's spread (measured: 0.05 -> 0.73,
    # 0.1 -> 2.9; docs/model.md).
    head_init_std=0.08,
)

PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "paper": (ModelConfig(), TrainConfig()),
    "tiny": (_TINY_MODEL, _TINY_TRAIN),
    "small": (_SMALL_MODEL, _SMALL_TRAIN),
    "compact": (_COMPACT_MODEL, _TINY_TRAIN),
}


def preset(name: str, **overrides: Any) -> tuple[ModelConfig, TrainConfig]:
    """The named preset's (ModelConfig, TrainConfig), with `overrides` routed to whichever has the field."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    model_cfg, train_cfg = PRESETS[name]
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"extra"}
    unknown = set(overrides) - model_fields - train_fields
    if unknown:
        raise ValueError(f"unknown config field(s) {sorted(unknown)} for preset {name!r}")
    model_cfg = dataclasses.replace(
        model_cfg, **{k: v for k, v in overrides.items() if k in model_fields}
    )
    train_cfg = dataclasses.replace(
        train_cfg, **{k: v for k, v in overrides.items() if k in train_fields}
    )
    return model_cfg, train_cfg


def config_to_dict(cfg: ModelConfig | TrainConfig) -> dict[str, Any]:
    """A JSON-ready dict (tuples become lists)."""
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from `config_to_dict` output; lists become tuples again."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {sorted(unknown)}")
    return cls(**{k: _as_tuple(v) if k != "extra" else v for k, v in data.items()})


def _as_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value
