"""The ``trainer`` section of a config: the loop, the optimiser and the device (ablate.training.trainer runs it)."""

from __future__ import annotations

from ablate.config.params import Param

TRAINER_PARAMS = {
    "seed": Param(0, "the training seed: model init, batches, augmentation (the split has its own)"),
    "epochs": Param(10, "epochs to train", low=1),
    "steps_per_epoch": Param(100, "optimiser steps per epoch", low=1),
    "batch_size": Param(32, "labeled images per step", low=1),
    "mu": Param(7, "unlabeled images per labeled image in a step", low=1),
    "optimizer": Param(
        "adam", "adam (Ada-CM: lr 5e-4, no schedule) or sgd (momentum, cosine decay)", choices=("adam", "sgd")
    ),
    "lr": Param(5e-4, "learning rate", low=0.0, open_low=True),
    "momentum": Param(0.9, "sgd momentum", low=0.0, high=1.0, open_high=True),
    "nesterov": Param(True, "sgd: Nesterov momentum"),
    "weight_decay": Param(0.0, "weight decay", low=0.0),
    "decay_bn_bias": Param(
        True,
        "weight decay on every parameter (true) or not on biases and batch norm (false: FixMatch, kekmodel "
        "train.py:243-249, google fixmatch.py:122 decays kernels only; USB semilearn/nets/utils.py:77-97)",
    ),
    "schedule": Param(
        "none",
        "learning-rate schedule over all K steps: none, cosine (lr0 (1 + cos(pi k / K)) / 2, ends at 0) or "
        "cosine_7_16 (lr0 cos(7 pi k / 16 K), ends at 0.195 lr0: FixMatch, google fixmatch.py:92-93, kekmodel "
        "train.py:43-55; USB semilearn/core/utils/build.py:217-241)",
        choices=("none", "cosine", "cosine_7_16"),
    ),
    "forward": Param(
        "auto",
        "one forward over the concatenated views, or one per view (auto: concat on CUDA; "
        "separate on CPU, where one big batch measured 2x slower)",
        choices=("auto", "concat", "separate"),
    ),
    "device": Param("auto", "auto (CUDA when there is one), cpu or cuda", choices=("auto", "cpu", "cuda")),
    "precision": Param(
        "auto",
        "auto (bf16 autocast on CUDA and on a CPU with native bf16, AVX-512 BF16 or AMX, where a step measured "
        "1.5x to 2x faster; fp32 on other CPUs, where bf16 is emulated), fp32 or bf16",
        choices=("auto", "fp32", "bf16"),
    ),
    "channels_last": Param(
        "auto",
        "NHWC memory format for the model and its inputs (auto: on, on CUDA and on a CPU, where oneDNN's "
        "convolution, batch norm and max-pool measured 1.5x faster per step); true or false. Rounding differs "
        "from NCHW slightly",
        choices=("auto", True, False),
        kind=object,
    ),
    "compile": Param(
        False,
        "torch.compile the training forward (off: on the 2-core CPU measured it made no step faster and its first "
        "compilation on a machine takes about a minute; the compile cache on disk is shared by a machine's runs). "
        "Rounding differs from eager slightly",
    ),
    "fuse_eval": Param(
        "auto",
        "evaluate a copy of the model with batch norm folded into the convolutions (auto: on, 1.2x faster "
        "evaluation on a CPU); true or false. The same function up to rounding",
        choices=("auto", True, False),
        kind=object,
    ),
    "overlap": Param(
        "auto",
        "make the next step's batch (draws and views) in a background thread while this step trains; the same "
        "numbers as without (auto: on a CPU when the process has a core more than torch's threads); true or false",
        choices=("auto", True, False),
        kind=object,
    ),
    "background_forward": Param(
        "auto",
        "run the weak views' no-grad forward in a background thread while the labeled and strong views train; the "
        "same numbers up to rounding (auto: on a CPU when the process has twice torch's threads in cores and the "
        "model has no dropout); true or false",
        choices=("auto", True, False),
        kind=object,
    ),
    "eval_batch_size": Param(512, "images per evaluation forward", low=1),
    "eval_unlabeled": Param(
        2000,
        "unlabeled images scored each epoch (mask rate, pseudo-label accuracy); null: all",
        low=0,
        nullable=True,
        kind=int,
    ),
    "max_loss": Param(
        1000.0,
        "a step whose loss is not finite or exceeds this ends the run as diverged (null: only non-finite losses)",
        low=0.0,
        open_low=True,
        nullable=True,
        kind=float,
    ),
}
