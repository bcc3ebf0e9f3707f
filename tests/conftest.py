import contextlib
import os
import sys

import pytest
import torch

from bisenet.config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig
from bisenet.data.synthetic import make_synthetic_cityscapes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# State-dict listings of the reference implementation (CoinCheung/BiSeNet), copied from
# shared/reference so that the suite runs from a bare clone.
REFERENCE = os.path.join(REPO, "tests", "data")

torch.set_num_threads(min(2, os.cpu_count() or 1))


def random_statistics_model(model_class=None, seed=0):
    """A random eval-mode model (BiSeNetV1 unless ``model_class``) whose BatchNorm layers have
    non-trivial statistics and affine parameters, so that every layer matters."""
    from bisenet.models.bisenetv1 import BiSeNetV1

    torch.manual_seed(seed)
    model = (model_class or BiSeNetV1)(19)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """``random_statistics_model()``'s weights as a checkpoint file."""
    from bisenet.checkpoint import save_checkpoint

    path = str(tmp_path_factory.mktemp("weights") / "model.pth")
    save_checkpoint({"model": random_statistics_model().state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny dataset in the official Cityscapes layout."""
    root = str(tmp_path_factory.mktemp("cityscapes"))
    make_synthetic_cityscapes(root, num_train=6, num_val=3, height=64, width=128, seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def trained_tiny(synthetic_root, tmp_path_factory):
    """``(cfg, model, weights)``: the quickstart config trained for 60 steps on the tiny dataset
    (about 15 s), for tests that need a model whose predictions mean something."""
    from bisenet.config import load_config
    from bisenet.engine.trainer import train

    output = tmp_path_factory.mktemp("trained")
    cfg = load_config(f"{REPO}/configs/bisenetv1_synthetic.py",
                      [f"data.root={synthetic_root}", f"train.output_dir={output}", "data.crop_size=[64,64]",
                       "data.num_workers=0", "eval.num_workers=0", "train.max_iters=60", "train.batch_size=4",
                       "train.warmup_iters=5", "train.eval_interval=0", "train.base_lr=0.02"])
    model, weights = train(cfg, "cpu", progress=False)
    return cfg, model.eval(), weights


@pytest.fixture
def synthetic_copy(synthetic_root, tmp_path):
    """A private copy of the tiny dataset, for tests that damage it."""
    import shutil

    copy = tmp_path / "cityscapes"
    shutil.copytree(synthetic_root, copy)
    return copy


@pytest.fixture
def tiny_cfg(synthetic_root, tmp_path):
    return Config(
        model=ModelConfig(num_classes=19),
        data=DataConfig(root=synthetic_root, crop_size=(64, 64), scale_range=(0.75, 1.25), num_workers=0),
        train=TrainConfig(max_iters=4, batch_size=2, warmup_iters=2, amp=False, log_interval=1,
                          checkpoint_interval=100, output_dir=str(tmp_path / "run")),
        eval=EvalConfig(batch_size=1, num_workers=0),
    )


class ToolResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def checkout_env(env=None):
    """``env`` (default: this process's) with this checkout first on PYTHONPATH: a tool run as a
    script would otherwise import whichever bisenet is installed, maybe another checkout's."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def process_state(cwd=None, env=None):
    """Run a command in this process as if in its own: ``cwd`` and ``env`` (default: unchanged)
    apply meanwhile, and what a tool may change for the rest of its process (the working folder,
    the environment, ``sys.argv``, ``sys.path``, signal handlers, torch's thread count, the random
    generators) is put back afterwards, so that nothing leaks into the next test."""
    import random
    import signal

    import numpy as np

    saved = (os.getcwd(), dict(os.environ), list(sys.argv), list(sys.path), torch.get_num_threads(),
             torch.get_rng_state(), random.getstate(), np.random.get_state())
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        cwd_before, environ, sys.argv[:], sys.path[:], threads, torch_rng, python_rng, numpy_rng = saved
        os.chdir(cwd_before)
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
        torch.set_rng_state(torch_rng)
        random.setstate(python_rng)
        np.random.set_state(numpy_rng)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _exit_code(exc):
    """The status a process ending with ``SystemExit`` ``exc`` exits with (what the interpreter
    does: None is 0, a message is printed and is 1)."""
    if isinstance(exc.code, int):
        return exc.code
    if exc.code is not None:
        print(exc.code, file=sys.stderr)
    return 0 if exc.code is None else 1


@contextlib.contextmanager
def captured_run(result):
    """Capture stdout and stderr into ``result`` and turn how the code ended into its exit code,
    as the interpreter would: ``SystemExit``'s code, or a traceback (a bug) and 1."""
    import io
    import traceback

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                yield
            except SystemExit as exc:
                result.returncode = _exit_code(exc)
            except Exception:  # a bug: what the command line would show
                traceback.print_exc()
                result.returncode = 1
    finally:
        result.stdout, result.stderr = out.getvalue(), err.getvalue()


def run_tool(name, *args, env=None, separate_process=False):
    """Run ``tools/<name> args`` as a user would; returns its exit code, stdout and stderr.

    In this process by default, through the same ``bisenet.cli.run`` as the command line (seconds
    faster than starting Python and importing torch again), with ``env`` applied to ``os.environ``
    meanwhile; ``separate_process`` for what needs its own process (startup-time environment,
    signals)."""
    if separate_process:
        import subprocess

        result = subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *map(str, args)], cwd=REPO,
                                env=checkout_env(env), capture_output=True, text=True, check=False, timeout=600)
        return ToolResult(result.returncode, result.stdout, result.stderr)
    import runpy

    from bisenet.cli import run

    path = os.path.join(REPO, "tools", name)
    main = runpy.run_path(path)["main"]
    result = ToolResult(0, "", "")
    with process_state(env=env), captured_run(result):
        sys.argv[:] = [path, *map(str, args)]  # what usage messages name the tool by
        run(main, sys.argv[1:])
    return result


def run_python(argv, cwd=None, env=None):
    """``python *argv`` run in this process, as the interpreter runs it (``argv``: a script and its
    arguments, ``-m MODULE ...`` or ``-c CODE ...``): as ``__main__``, with ``sys.argv`` and
    ``sys.path[0]`` set as Python sets them, in ``cwd`` with ``env``. Returns its exit code,
    stdout and stderr. Seconds faster than a new interpreter importing torch again; a command
    whose process boundary is the point (signals, several processes, the interpreter's
    start-up) needs a real process instead."""
    import runpy

    argv = [str(a) for a in argv]
    result = ToolResult(0, "", "")
    with process_state(cwd, env), captured_run(result):
        if argv[0] == "-c":
            sys.argv[:] = argv[1:]
            sys.argv[0] = "-c"
            sys.path.insert(0, os.getcwd())
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        elif argv[0] == "-m":
            sys.argv[:] = argv[1:]
            sys.path.insert(0, os.getcwd())
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv[:] = argv
            sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
            runpy.run_path(argv[0], run_name="__main__")
    return result


def namespace_available():
    """Whether this machine lets a process mount its own filesystems (a private mount namespace
    under ``unshare -rm``): root, or unprivileged user namespaces."""
    import shutil
    import subprocess

    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False).returncode == 0


def run_with_mounts(argv, mounts, env=None, timeout=600):
    """Run ``argv`` in a private mount namespace where each folder of ``mounts`` is a fresh tmpfs
    mounted with the options given (``"size=64k"``: a disk that fills up; ``"ro"``: a read-only
    one), as a real small or read-only disk behaves: no simulated error, no message matched.
    The test is skipped where namespaces are not allowed."""
    import shlex
    import subprocess

    if not namespace_available():
        pytest.skip("mount namespaces (unshare -rm) are not available on this machine")
    env = checkout_env(env)
    setup = " && ".join(f"mkdir -p {shlex.quote(str(path))} && mount -t tmpfs -o {options} tmpfs "
                        f"{shlex.quote(str(path))}" for path, options in mounts.items())
    script = f"{setup} && exec {' '.join(shlex.quote(str(a)) for a in argv)}"
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, env=env, capture_output=True,
                            text=True, check=False, timeout=timeout)
    return ToolResult(result.returncode, result.stdout, result.stderr)


def tool_argv(name, *args):
    """The command line of ``tools/<name> args`` (for ``run_with_mounts``)."""
    return [sys.executable, os.path.join(REPO, "tools", name), *map(str, args)]


def then_list_files(argv, folder):
    """``argv`` followed, in the same mount namespace, by a listing of the files under ``folder``
    (``"FILE <size> <path>"`` lines on stdout; see ``listed_files``), exiting with ``argv``'s
    status: what a command left on a disk that ``run_with_mounts`` unmounts when it ends."""
    import shlex

    listing = f"find {shlex.quote(str(folder))} -type f -printf 'FILE %s %p\\n'"
    return ["sh", "-c", f"{shlex.join(map(str, argv))}; status=$?; {listing}; exit $status"]


def listed_files(stdout):
    """``{path: size}`` of the ``then_list_files`` lines."""
    return {line.split(" ", 2)[2]: int(line.split(" ", 2)[1]) for line in stdout.splitlines()
            if line.startswith("FILE ")}
