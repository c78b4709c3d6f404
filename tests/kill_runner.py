"""train.py that SIGKILLs itself at a chosen point: for the resume tests only.

    python tests/kill_runner.py KILL train.py-flags...

KILL is ``step:N`` (right after optimizer step N), ``save:N`` (during the N-th
checkpoint save, after its weights are written and before it is complete) or
``none``. The kill is a real SIGKILL of this process: no handler runs, nothing
is flushed, exactly what a pre-empted job sees.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

torch.set_num_threads(1)

from mt_dnn import checkpoint, trainer  # noqa: E402
from mt_dnn.cli import run_train  # noqa: E402


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    kind, _, n = sys.argv[1].partition(":")
    if kind == "step":
        real_step = trainer.optimizer_step

        def step(run, state, loss_finite):
            out = real_step(run, state, loss_finite)
            if state.global_step == int(n):
                die()
            return out

        trainer.optimizer_step = step
    elif kind == "save":
        calls = {"n": 0}
        real_write = checkpoint._write_manifest

        def write_manifest(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == int(n):
                die()
            return real_write(*args, **kwargs)

        checkpoint._write_manifest = write_manifest
    return run_train(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
