"""Settings of the adversarial regularizers, and the named presets.

The trainer builds its command line and YAML keys from the fields of
:class:`AdvConfig`, so a field name IS the flag name (``--adv_epsilon``) and the
``help`` metadata is what ``--help`` shows. Names follow mt-dnn's flags where
mt-dnn had one.

Presets (``--adv_preset``) set the geometry fields together, so nobody has to
remember five numbers; any field given in the YAML or as a flag still wins.
Precedence: field defaults < preset < ``--config`` YAML < flags.

- ``relative`` (the default): word embeddings, a ball of radius eps = 0.05 of
  each token's embedding size, eta = 10 eps, initial noise std 0.1 eps.
- ``paper``: the TAT paper's literal numbers on word embeddings (absolute
  eps = 1e-5, eta = 1e-4), except the initial noise, which is read as a standard
  deviation of 0.1 eps (1e-6) so that it lies inside the ball: the paper's
  sigma^2 = 1e-5 read as a variance is 316x the ball and read as a std (as
  mt-dnn's code does) 1x the ball, and either way the projection keeps the
  noise's sign, not the gradient's.
- ``mtdnn``: what mt-dnn's code (which the paper extends) does: perturb the
  embedding block's post-LayerNorm output, add eta times the raw gradient to the
  initial noise, normalise the sum to unit L-inf per token (``adv_epsilon`` is
  only a stabiliser), no projection, each KL's target side detached, every
  forward its own dropout mask. Its perturbation points in a random direction
  when the gradient is smaller than the noise (see the experiments README).
- ``mtdnn_attack``: mt-dnn's space and about its size (0.5 of each token's
  post-LayerNorm size), but a projected normalised-gradient step, so it attacks.
"""

# No `from __future__ import annotations`: the trainer reads field.type to build
# its command line, so the types must be real objects, not strings.
import math
from dataclasses import dataclass, field, fields

P_NORMS = ("inf", "l2")
SPACES = ("word", "hidden")
UPDATES = ("project", "mtdnn")
DIVERGENCE_GRADS = ("both", "mtdnn")
DROPOUTS = ("shared", "adversarial", "independent")
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
        metadata=_help(
            "adversarial regularizer: none, smart, tat, freelb, r3f or random (a random-direction control of TAT's size)"
        ),
    )
    adv_preset: str = field(
        default="relative",
        metadata=_help(
            "named set of geometry settings (space, scale, update, eps, eta, noise, "
            "divergence gradient, dropout): relative, paper, mtdnn or mtdnn_attack; fields "
            "given in the YAML or as flags override it"
        ),
    )
    adv_space: str = field(
        default="word",
        metadata=_help(
            "what is perturbed: word (the word embeddings, run with inputs_embeds=) or hidden "
            "(the embedding block's post-LayerNorm output, fed to the encoder layers; mt-dnn's "
            "choice)"
        ),
    )
    adv_update: str = field(
        default="project",
        metadata=_help(
            "SMART/TAT perturbation update: project (delta + eta * g/||g||, projected on the "
            "eps ball) or mtdnn (delta + eta * g, then normalised to unit norm per group with "
            "adv_epsilon as stabiliser, no projection: mt-dnn's code)"
        ),
    )
    adv_divergence_grad: str = field(
        default="mtdnn",
        metadata=_help(
            "gradient form of the final symmetric KL: mtdnn (each KL's target side detached, "
            "as mt-dnn's criterion, for which the papers' alpha was tuned) or both (gradients "
            "through both sides of both KLs: about twice the gradient at the same alpha)"
        ),
    )
    adv_dropout: str = field(
        default="shared",
        metadata=_help(
            "dropout masks of one adversarial step: shared (the clean, inner and perturbed "
            "forwards replay one mask, so delta = 0 gives a term of exactly 0), adversarial "
            "(inner and perturbed forwards share one mask, the clean forward has its own) or "
            "independent (every forward draws its own, as mt-dnn)"
        ),
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
            "step size eta of each gradient step (relative: fraction of the embedding size; "
            "the TAT paper's absolute value is 1e-4, mt-dnn's 1e-3)"
        ),
    )
    adv_noise_var: float = field(
        default=0.005,
        metadata=_help(
            "standard deviation of the initial Gaussian noise of SMART/TAT per component, read "
            "as mt-dnn's code reads its noise_var (a multiplier of N(0, 1)), in the units of "
            "adv_scale; with adv_update=project it must not exceed adv_epsilon, so the start "
            "lies inside the ball"
        ),
    )
    adv_epsilon: float = field(
        default=0.05,
        metadata=_help(
            "adv_update=project: radius eps of the ball delta is projected on (relative: "
            "fraction of the embedding size, 0.05 = 5 percent; the papers' absolute value is "
            "1e-5); adv_update=mtdnn: the stabiliser added to the norm, as in mt-dnn"
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
            "adv_preset": tuple(PRESETS),
            "adv_space": SPACES,
            "adv_update": UPDATES,
            "adv_divergence_grad": DIVERGENCE_GRADS,
            "adv_dropout": DROPOUTS,
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
        # inf passes the `>= 0` checks below, and nan fails them with a range message that
        # hides what is wrong: refuse both first, by name.
        for f in fields(self):
            if f.type is float and not math.isfinite(getattr(self, f.name)):
                raise ValueError(f"{f.name} must be a finite number, got {getattr(self, f.name)!r}")
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
        if self.adv_update == "project" and self.adv_noise_var > self.adv_epsilon:
            raise ValueError(
                f"adv_noise_var (initial noise std) {self.adv_noise_var!r} exceeds adv_epsilon "
                f"{self.adv_epsilon!r}: the projection would keep the noise's sign, not the "
                "gradient's; use a std of at most eps (0.1 * eps is the presets' choice)"
            )
        if not 0.0 <= self.tat_momentum < 1.0:
            raise ValueError(f"tat_momentum must be in [0, 1), got {self.tat_momentum!r}")
        if self.tat_bins < 2:
            raise ValueError(f"tat_bins must be >= 2, got {self.tat_bins!r}")


# Preset name -> field values. Applied below the YAML and the flags (see the module
# docstring); "relative" restates the field defaults so it can undo another preset.
PRESETS: dict[str, dict] = {
    "relative": dict(
        adv_space="word",
        adv_scale="relative",
        adv_update="project",
        adv_epsilon=0.05,
        adv_step_size=0.5,
        adv_noise_var=0.005,
        adv_p_norm="inf",
        adv_norm_level="token",
        adv_divergence_grad="mtdnn",
        adv_dropout="shared",
        freelb_init_mag=0.02,
        r3f_eps=0.05,
    ),
    "paper": dict(
        adv_space="word",
        adv_scale="absolute",
        adv_update="project",
        adv_epsilon=1e-5,
        adv_step_size=1e-4,
        adv_noise_var=1e-6,
        adv_p_norm="inf",
        adv_norm_level="token",
        adv_divergence_grad="mtdnn",
        adv_dropout="shared",
        freelb_init_mag=4e-6,  # 0.4 eps, as 0.02 is of 0.05
        r3f_eps=1e-5,
    ),
    "mtdnn": dict(
        adv_space="hidden",
        adv_scale="absolute",
        adv_update="mtdnn",
        adv_epsilon=1e-6,
        adv_step_size=1e-3,
        adv_noise_var=1e-5,
        adv_p_norm="inf",
        adv_norm_level="token",
        adv_divergence_grad="mtdnn",
        adv_dropout="independent",
        r3f_eps=1e-5,
    ),
    "mtdnn_attack": dict(
        adv_space="hidden",
        adv_scale="relative",
        adv_update="project",
        adv_epsilon=0.5,
        adv_step_size=5.0,
        adv_noise_var=0.05,
        adv_p_norm="inf",
        adv_norm_level="token",
        adv_divergence_grad="mtdnn",
        adv_dropout="shared",
        freelb_init_mag=0.2,
        r3f_eps=0.5,
    ),
}


def preset_values(name: str) -> dict:
    """The field values preset ``name`` sets (an error lists the valid names)."""
    if name not in PRESETS:
        raise ValueError(f"adv_preset {name!r} is not one of {list(PRESETS)}")
    return {"adv_preset": name, **PRESETS[name]}
