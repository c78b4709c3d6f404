"""Settings of the adversarial regularizers.

The trainer builds its command line and YAML keys from the fields of
:class:`AdvConfig`, so a field name IS the flag name (``--adv_epsilon``) and the
``help`` metadata is what ``--help`` shows. Names follow mt-dnn's flags where
mt-dnn had one.

Scale (read this before changing eps): with ``adv_scale="relative"`` (the
default) ``adv_epsilon``, ``adv_step_size``, ``adv_noise_var`` (as a std),
``freelb_init_mag`` and ``r3f_eps`` are fractions of the size of the clean word
embeddings of the token (or example) they perturb, so a perturbation at the edge
of the ball has ``||delta|| / ||embedding|| ~= adv_epsilon`` whatever the norm
(``StepOutput.delta_norm_ratio`` reports it every step). With
``adv_scale="absolute"`` they are raw radii in embedding units, the reading of
the papers (eps=1e-5, eta=1e-4, sigma^2=1e-5 for TAT), which on real word
embeddings (norm ~1) perturbs by about 1e-5 of their size.
"""

# No `from __future__ import annotations`: the trainer reads field.type to build
# its command line, so the types must be real objects, not strings.
from dataclasses import dataclass, field

P_NORMS = ("inf", "l2")
NORM_LEVELS = ("token", "example")
SCALES = ("relative", "absolute")
TAT_ERRORS = ("counts", "probs")
TAT_UPDATES = ("epoch", "step")
R3F_NOISES = ("uniform", "normal")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True)
class AdvConfig:
    adv: str = field(
        default="none",
        metadata=_help("adversarial regularizer: none, smart, tat, freelb or r3f"),
    )
    adv_alpha: float = field(
        default=1.0,
        metadata=_help(
            "weight of the adversarial term (SMART/TAT alpha, R3F lambda); "
            "TAT and SMART papers use 1"
        ),
    )
    adv_k: int = field(
        default=1,
        metadata=_help(
            "perturbation steps K (SMART/TAT ascent/descent steps; FreeLB ascent steps, "
            "one backward each; the papers use 1 for SMART/TAT, 2-5 for FreeLB)"
        ),
    )
    adv_step_size: float = field(
        default=0.5,
        metadata=_help(
            "step size eta of each normalised gradient step (relative: fraction of the "
            "embedding size; the TAT paper's absolute value is 1e-4)"
        ),
    )
    adv_noise_var: float = field(
        default=1e-5,
        metadata=_help(
            "variance sigma^2 of the initial Gaussian noise of SMART/TAT (relative: sigma is "
            "a fraction of the embedding size; the paper's value is 1e-5)"
        ),
    )
    adv_epsilon: float = field(
        default=0.05,
        metadata=_help(
            "radius eps of the ball delta is projected on (relative: fraction of the embedding "
            "size, 0.05 = 5 percent; the papers' absolute value is 1e-5)"
        ),
    )
    adv_p_norm: str = field(
        default="inf",
        metadata=_help("norm of the ball and of the gradient normalisation: inf or l2"),
    )
    adv_norm_level: str = field(
        default="token",
        metadata=_help(
            "normalise and project per token (each token its own ball) or per example "
            "(one ball over all real tokens of an example): token or example"
        ),
    )
    adv_scale: str = field(
        default="relative",
        metadata=_help(
            "relative: eps/eta/sigma/init_mag/r3f_eps are fractions of the clean word "
            "embedding size of the token or example; absolute: raw radii in embedding units "
            "(the papers' reading)"
        ),
    )
    adv_seed: int = field(
        default=0,
        metadata=_help("seed of the regularizer's own random generator (noise, TAT targets)"),
    )
    tat_error: str = field(
        default="counts",
        metadata=_help(
            "TAT expected error e(y, y'): counts = rate of argmax predictions y' for gold y; "
            "probs = mean predicted probability of y' for gold y (regression: always counts)"
        ),
    )
    tat_update: str = field(
        default="epoch",
        metadata=_help(
            "when TAT's e is updated from the tallied training predictions: epoch (at the end "
            "of each epoch, as in the paper) or step (moving average, see tat_momentum)"
        ),
    )
    tat_momentum: float = field(
        default=0.9,
        metadata=_help("tat_update=step: e <- m * e + (1 - m) * this batch's estimate"),
    )
    tat_oracle: str | None = field(
        default=None,
        metadata=_help(
            "TAT oracle mode: a confusion-matrix JSON (written by predict.py) read once and "
            "kept fixed as e"
        ),
    )
    tat_bins: int = field(
        default=10,
        metadata=_help("TAT on regression tasks: the label range is cut into this many bins"),
    )
    tat_smoothing: float = field(
        default=0.0,
        metadata=_help(
            "added to every wrong label's e before sampling targets (0: a gold label with no "
            "recorded errors samples uniformly among the wrong labels)"
        ),
    )
    tat_adversarial: bool = field(
        default=False,
        metadata=_help(
            "TAT: use the adversarial term l(f(x+delta), y) instead of the virtual "
            "l(f(x), f(x+delta))"
        ),
    )
    freelb_init_mag: float = field(
        default=0.02,
        metadata=_help(
            "FreeLB: magnitude of the uniform initial delta (relative: fraction of the "
            "embedding size; 0 starts from the clean input)"
        ),
    )
    r3f_noise: str = field(
        default="uniform",
        metadata=_help("R3F noise distribution: uniform U(-eps, eps) or normal N(0, eps^2)"),
    )
    r3f_eps: float = field(
        default=0.05,
        metadata=_help(
            "R3F noise size (relative: fraction of the embedding size per component; the "
            "paper's absolute value is 1e-5)"
        ),
    )

    def __post_init__(self):
        # Lazy import: the package imports this module.
        from mt_dnn.adversarial import REGULARIZERS

        choices = {
            "adv": tuple(REGULARIZERS),
            "adv_p_norm": P_NORMS,
            "adv_norm_level": NORM_LEVELS,
            "adv_scale": SCALES,
            "tat_error": TAT_ERRORS,
            "tat_update": TAT_UPDATES,
            "r3f_noise": R3F_NOISES,
        }
        for name, valid in choices.items():
            value = getattr(self, name)
            if value not in valid:
                raise ValueError(f"{name} {value!r} is not one of {list(valid)}")
        non_negative = (
            "adv_alpha",
            "adv_k",
            "adv_step_size",
            "adv_noise_var",
            "adv_epsilon",
            "tat_smoothing",
            "freelb_init_mag",
            "r3f_eps",
        )
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.tat_momentum < 1.0:
            raise ValueError(f"tat_momentum must be in [0, 1), got {self.tat_momentum!r}")
        if self.tat_bins < 2:
            raise ValueError(f"tat_bins must be >= 2, got {self.tat_bins!r}")
