"""`otdoctor explain`: one realistic excerpt of OneTrainer's output per known problem, and an unknown one."""

# ruff: noqa: E501  (the logs are verbatim, long lines included)

from __future__ import annotations

import json

import pytest

from otdoctor.explain.known_problems import explain_text, known_problems

LOGS = {
    "unsupported-python": """\
$ ./start-ui.sh
Traceback (most recent call last):
  File "/home/ana/Projects/OneTrainer/scripts/train_ui_qt.py", line 9, in <module>
    from modules.ui.TrainUI import TrainUI
  File "/home/ana/Projects/OneTrainer/modules/ui/TrainUI.py", line 12, in <module>
    from mgds.MGDS import MGDS
ModuleNotFoundError: No module named 'mgds'
""",
    "python-3-11-0": """\
Collecting scipy==1.15.3
  Downloading scipy-1.15.3.tar.gz (59.7 MB)
ERROR: Ignored the following versions that require a different python version: 1.0 Requires-Python >=3.11.1,!=3.11.0; 2.2.6 Requires-Python >=3.10,!=3.11.0
ERROR: Could not find a version that satisfies the requirement numpy==2.2.6 (from versions: none)
ERROR: No matching distribution found for numpy==2.2.6
""",
    "cpu-torch": """\
  File "/home/ana/Projects/OneTrainer/modules/trainer/GenericTrainer.py", line 95, in start
    self.model_setup.setup_optimizations(self.model, self.config)
  File "/home/ana/Projects/OneTrainer/venv/lib/python3.10/site-packages/torch/cuda/__init__.py", line 310, in _lazy_init
    raise AssertionError("Torch not compiled with CUDA enabled")
AssertionError: Torch not compiled with CUDA enabled
""",
    "driver-too-old": """\
/home/ana/Projects/OneTrainer/venv/lib/python3.10/site-packages/torch/cuda/__init__.py:174: UserWarning: CUDA initialization: The NVIDIA driver on your system is too old (found version 12040). Please update your GPU driver by downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx Alternatively, go to: https://pytorch.org to install a PyTorch version that has been compiled with your version of the CUDA driver.
  return torch._C._cuda_getDeviceCount() > 0
""",
    "missing-stdlib": """\
Traceback (most recent call last):
  File "/home/ana/.pyenv/versions/3.10.13/lib/python3.10/ctypes/__init__.py", line 8, in <module>
    from _ctypes import Union, Structure, Array
ModuleNotFoundError: No module named '_ctypes'
""",
    "tkinter-missing": """\
  File "/home/ana/Projects/OneTrainer/venv/lib/python3.10/site-packages/customtkinter/__init__.py", line 6, in <module>
    import tkinter
  File "/home/ana/.pyenv/versions/3.10.13/lib/python3.10/tkinter/__init__.py", line 37, in <module>
    import _tkinter # If this fails your Python may not be configured for Tk
ModuleNotFoundError: No module named '_tkinter'
""",
    "qt-xcb": """\
qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb platform plugin.
qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though it was found.
This application failed to start because no Qt platform plugin could be initialized.
Aborted (core dumped)
""",
    "libgl-missing": """\
  File "/home/ana/Projects/OneTrainer/venv/lib/python3.10/site-packages/cv2/__init__.py", line 153, in bootstrap
    native_module = importlib.import_module("cv2")
ImportError: libGL.so.1: cannot open shared object file: No such file or directory
""",
    "broken-editable": """\
Obtaining diffusers from git+https://github.com/huggingface/diffusers.git@1ffa423#egg=diffusers (from -r requirements-global.txt (line 22))
ERROR: Exception:
Traceback (most recent call last):
  File "/home/ana/Projects/OneTrainer/venv/lib/python3.10/site-packages/pip/_internal/cli/base_command.py", line 180, in exc_logging_wrapper
    status = run_func(*args)
  File "/home/ana/Projects/OneTrainer/venv/lib/python3.10/site-packages/pip/_internal/vcs/git.py", line 405, in get_remote_url
    remotes = stdout.splitlines()[0]
IndexError: list index out of range
""",
    "bad-path": """\
Traceback (most recent call last):
  File "/home/ana/My Projects/OneTrainer/venv/lib/python3.10/site-packages/torch/__init__.py", line 237, in <module>
    from torch._C import *  # noqa: F403
ImportError: libtorch_cpu.so: cannot open shared object file
""",
    "pkg-resources": """\
  File "/home/ana/Projects/OneTrainer/venv/lib/python3.10/site-packages/lion_pytorch/__init__.py", line 1, in <module>
    import pkg_resources
ModuleNotFoundError: No module named 'pkg_resources'
""",
    "stale-requirements": """\
  File "/home/ana/Projects/OneTrainer/modules/model/StableDiffusionXLModel.py", line 7, in <module>
    from diffusers import AutoencoderKL, DDIMScheduler, FluxTransformer2DModel
ImportError: cannot import name 'FluxTransformer2DModel' from 'diffusers' (/home/ana/Projects/OneTrainer/venv/src/diffusers/src/diffusers/__init__.py)
""",
    "cuda-oom": """\
step:  12%|█▏        | 9/72 [00:31<03:39,  3.49s/it, loss=0.0913, smooth loss=0.112]
Traceback (most recent call last):
  File "/home/ana/Projects/OneTrainer/modules/trainer/GenericTrainer.py", line 689, in train
    loss.backward()
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 50.00 MiB. GPU 0 has a total capacity of 23.55 GiB of which 21.69 MiB is free. Including non-PyTorch memory, this process has 22.81 GiB memory in use.
""",
    "loss-nan": """\
step:  44%|████▍     | 32/72 [01:05<01:21,  2.04s/it, loss=nan, smooth loss=nan]
Training loss became NaN, stopping training
""",
    "wrong-model-type": """\
Traceback (most recent call last):
  File "/home/ana/Projects/OneTrainer/modules/modelLoader/stableDiffusionXL/StableDiffusionXLModelLoader.py", line 221, in load
    self.__load_safetensors(model, model_names.base_model, weight_dtypes)
KeyError: 'conditioner.embedders.1.model.ln_final.weight'
Exception: could not load model: /home/ana/models/hyperRealism_30.safetensors
""",
    "gated-repo": """\
huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-66a1b2c3-4d5e6f)
Cannot access gated repo for url https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/model_index.json.
Access to model black-forest-labs/FLUX.1-dev is restricted. You must have access to it and be authenticated to access it. Please log in.
""",
    "slow-steps": """\
epoch:   2%|▍          | 3/200 [13:46<11:15:41, 205.79s/it]
step:  40%|████      | 29/72 [1:39:06<2:26:57, 205.05s/it, loss=0.0871, smooth loss=0.0934]
""",
    "network-unreachable": """\
Obtaining diffusers from git+https://github.com/huggingface/diffusers.git@1ffa423#egg=diffusers (from -r requirements-global.txt (line 23))
  Cloning https://github.com/huggingface/diffusers.git (to revision 1ffa423) to ./venv/src/diffusers
  Running command git clone --filter=blob:none --quiet https://github.com/huggingface/diffusers.git /tmp/ot-real/venv/src/diffusers
  fatal: unable to access 'https://github.com/huggingface/diffusers.git/': Could not resolve host: github.com
  error: subprocess-exited-with-error
""",
}

UNKNOWN = """\
Traceback (most recent call last):
  File "/home/ana/Projects/OneTrainer/scripts/train.py", line 44, in <module>
    main()
  File "/home/ana/Projects/OneTrainer/modules/util/args/TrainArgs.py", line 88, in parse
    raise ValueError("frobnicator must be positive")
ValueError: frobnicator must be positive
"""


def test_every_known_problem_has_an_excerpt():
    assert {p.id for p in known_problems()} == set(LOGS)
    assert len(LOGS) == 18  # the guide's 17 common problems, plus an unreachable network


@pytest.mark.parametrize("problem_id", sorted(LOGS))
def test_each_excerpt_is_recognised(problem_id):
    matches = explain_text(LOGS[problem_id])
    ids = [m.problem.id for m in matches]
    assert problem_id in ids, ids
    # The headline is the problem itself, not a side effect matched elsewhere in the excerpt.
    first = next(m for m in matches if m.problem.id == problem_id)
    assert first.evidence and first.problem.fix and first.problem.otdoctor.startswith("otdoctor")


def test_excerpts_do_not_cry_wolf():
    """Each excerpt matches at most one other problem: the table is specific, not a net."""
    for problem_id, text in LOGS.items():
        others = [m.problem.id for m in explain_text(text) if m.problem.id != problem_id]
        assert len(others) <= 1, (problem_id, others)


def test_unknown_error_is_said_honestly(run_cli, tmp_path):
    assert explain_text(UNKNOWN) == []
    log = tmp_path / "train.log"
    log.write_text(UNKNOWN)
    res = run_cli("explain", str(log))
    assert res.returncode == 1
    assert "No known problem recognised" in res.stdout
    assert "ValueError: frobnicator must be positive" in res.stdout
    assert "otdoctor report" in res.stdout


def test_cli_reads_a_file_and_stdin(run_cli, tmp_path):
    log = tmp_path / "install.log"
    # A whole failed session: tqdm redraws with \r and colour codes, as a terminal log has them.
    log.write_text("\x1b[32mstarting\x1b[0m\r\n" + LOGS["cuda-oom"].replace("\n", "\r\n") + LOGS["loss-nan"])
    res = run_cli("explain", str(log))
    assert res.returncode == 0, res.stderr
    assert "CUDA out of memory" in res.stdout and "Training loss became NaN" in res.stdout
    assert res.stdout.index("CUDA out of memory") < res.stdout.index("Training loss became NaN")
    assert "otdoctor fix gpu.vram" in res.stdout

    res = run_cli("explain", "-", "--format", "json", input=LOGS["pkg-resources"])
    doc = json.loads(res.stdout)
    assert doc["recognised"] is True
    assert doc["problems"][0]["id"] == "pkg-resources"
    assert "setuptools==81.0.0" in " ".join(doc["problems"][0]["commands"])


def test_secrets_in_a_log_stay_out_of_the_answer(run_cli):
    text = LOGS["gated-repo"].replace(
        "(Request ID", "(Authorization: Bearer hf_abcdefghijklmnopqrstuvwxyz0123456789; Request ID"
    )
    res = run_cli("explain", "-", input=text)
    assert res.returncode == 0
    assert "GatedRepoError" in res.stdout  # the evidence line is shown, masked
    assert "hf_abcdefghijklmnop" not in res.stdout


def test_missing_log_file_is_one_line(run_cli, tmp_path):
    res = run_cli("explain", str(tmp_path / "nope.log"))
    assert res.returncode == 2
    assert "log file not found" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "make,named",
    [
        (lambda p: p.mkdir(), "is a folder"),  # was "log file not found" for a folder that exists
        (lambda p: p.write_bytes(b""), "is empty: nothing to explain"),  # was "No known problem recognised"
        (lambda p: p.write_bytes(b"\x93\x00\xff" * 200), "is binary data, not a text log"),  # a model/image by mistake
    ],
)
def test_folder_empty_or_binary_input_is_one_line(run_cli, tmp_path, make, named):
    log = tmp_path / "ot.log"
    make(log)
    res = run_cli("explain", str(log))
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("otdoctor: error: ") and named in res.stderr.splitlines()[0]
    assert res.stdout == "" and "Traceback" not in res.stderr


def test_powershell_utf16_log_is_read_and_bad_format_refused(run_cli, tmp_path):
    log = tmp_path / "ot.log"
    log.write_bytes(LOGS["cuda-oom"].encode("utf-16"))  # what PowerShell's `>` writes
    res = run_cli("explain", str(log))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "CUDA out of memory" in res.stdout
    res = run_cli("explain", str(log), "--format", "xml")  # was silently text
    assert res.returncode == 2 and res.stderr.strip() == "otdoctor: error: unknown --format 'xml'; choose text or json"
