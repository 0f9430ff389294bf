"""The environment variables a bug report shows: an allowlist, never "everything but secrets".

A user's shell holds tokens under names no pattern can foresee (`OT_CUSTOM_PASS`, `MY_WANDB`), so
the report names only the variables otdoctor reads or that OneTrainer, its launcher scripts,
torch, CUDA, Hugging Face or pip act on. Anything else is left out, name and value. The values of
listed variables still pass through `redact`, and a secret-named one (`HF_TOKEN`) shows `***`.
"""

from __future__ import annotations

from collections.abc import Mapping

from otdoctor.redact import MASK, is_secret_name

# Whole families, each owned by one tool that documents it.
ALLOWED_PREFIXES = (
    "CUDA_",  # the CUDA runtime (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER, CUDA_LAUNCH_BLOCKING)
    "PYTORCH_",  # torch (PYTORCH_CUDA_ALLOC_CONF, PYTORCH_NVML_BASED_CUDA_CHECK)
    "TORCH_",  # torch (TORCH_HOME, TORCH_CUDA_ARCH_LIST)
    "NVIDIA_",  # the NVIDIA container runtime (NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES)
    "NCCL_",  # torch's collective library
    "HF_HUB_",  # huggingface_hub (HF_HUB_CACHE, HF_HUB_OFFLINE, HF_HUB_ENABLE_HF_TRANSFER)
    "PYENV_",  # pyenv, which OneTrainer's launcher may use
    "OTDOCTOR_",  # otdoctor's own switches
)

ALLOWED_NAMES = frozenset(
    {
        # OneTrainer's launcher scripts and otdoctor's checkout lookup
        "OT_DIR",
        "OT_CONDA_CMD",
        "OT_CONDA_ENV",
        "OT_PYTHON_CMD",
        "OT_PYTHON_VENV",
        "OT_PREFER_VENV",
        "OT_PLATFORM_REQUIREMENTS",
        "OT_CUDA_LOWMEM_MODE",
        "OT_SCRIPT_DEBUG",
        "OT_LAZY_UPDATES",
        # Hugging Face: where models and tokens live, whether it goes online
        "HF_HOME",
        "HF_ENDPOINT",
        "HF_TOKEN",
        "HF_TOKEN_PATH",
        "HF_DATASETS_OFFLINE",
        "HUGGING_FACE_HUB_TOKEN",
        "TRANSFORMERS_CACHE",
        "TRANSFORMERS_OFFLINE",
        "DIFFUSERS_CACHE",
        "CIVITAI_TOKEN",
        "CIVITAI_API_KEY",
        # the interpreter and the venv OneTrainer runs in
        "PATH",
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONNOUSERSITE",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_NO_INDEX",
        "PIP_REQUIRE_VIRTUALENV",
        # the session: language, display (the UI), home and caches, WSL
        "HOME",
        "SHELL",
        "TERM",
        "LANG",
        "LC_ALL",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_SESSION_TYPE",
        "WSL_DISTRO_NAME",
        "TMPDIR",
    }
)


def is_allowed(name: str) -> bool:
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


def environment_text(env: Mapping[str, str]) -> str:
    """`NAME=value` lines for the allowed variables that are set, sorted; secret-named values masked."""
    lines = []
    for name in sorted(n for n in env if is_allowed(n)):
        value = MASK if env[name] and is_secret_name(name) else env[name]
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"
