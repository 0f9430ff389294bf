"""`redact`: every planted secret masked, everything else kept, in time linear in the text.

The property tests build text from pieces whose masked form is known (a secret in its place: an
option, a variable, a JSON key, a URL, a header, a token shape; decoys that only look close; filler
words that cannot spell a secret word), so the exact expected output is known for each example.
"""

from __future__ import annotations

import random
import secrets
import string
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from otdoctor.redact import MASK, is_secret_name, redact, register_env_secrets, register_secret
from tests.support.calm import assert_calm, run_main

# A generous bound: the old patterns took minutes on a line this long; speed itself is measured in
# benchmarks/redact.py.
BOUND_S = 5.0
MB = 1_000_000

SECRET_CHARS = string.ascii_letters + string.digits + "._+-"
secret_values = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(string.ascii_letters + string.digits),
    st.text(SECRET_CHARS, min_size=7, max_size=40),
)


def _alnum(alphabet: str, lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=lo, max_size=hi)


ALNUM = string.ascii_letters + string.digits
# (raw, masked) for one secret S in its place.
PLACES: list[Callable[[str], tuple[str, str]]] = [
    lambda s: (f"--wandb-key {s}", f"--wandb-key {MASK}"),
    lambda s: (f"--password={s}", f"--password={MASK}"),
    lambda s: (f'"--hf-token", "{s}"', f'"--hf-token", "{MASK}"'),
    lambda s: (f"['--api-key',\n  '{s}']", f"['--api-key',\n  '{MASK}']"),
    lambda s: (f"OT_CUSTOM_PASS={s}", f"OT_CUSTOM_PASS={MASK}"),
    lambda s: (f"MY_PASSWORD_2='{s}'", f"MY_PASSWORD_2='{MASK}'"),
    lambda s: (f'"huggingface_token": "{s}"', f'"huggingface_token": "{MASK}"'),
    lambda s: (f"api_key = '{s}'", f"api_key = '{MASK}'"),
    lambda s: (f"https://zelda:{s}@github.com/x.git", f"https://{MASK}@github.com/x.git"),
    lambda s: (f"/models/1?token={s}&type=Model", f"/models/1?token={MASK}&type=Model"),
    lambda s: (f"Authorization: Bearer {s}", f"Authorization: Bearer {MASK}"),
    lambda s: (f"x-api-key: {s}", f"x-api-key: {MASK}"),
]
SHAPES = st.one_of(
    _alnum(ALNUM, 20, 40).map(lambda t: "hf_" + t),
    _alnum(ALNUM, 20, 40).map(lambda t: "ghp_" + t),
    _alnum(ALNUM + "_", 20, 40).map(lambda t: "github_pat_" + t),
    _alnum(ALNUM, 20, 48).map(lambda t: "sk-proj-" + t),
    _alnum(string.ascii_uppercase + string.digits, 16, 16).map(lambda t: "AKIA" + t),
    _alnum("0123456789abcdef", 32, 32),  # a Civitai key
)
# Close to a secret, and kept as they are.
DECOYS = [
    "HF_TOKEN_PATH=/home/zelda/.cache/token",
    "GIT_ASKPASS=/usr/lib/git-core/askpass",
    "--lr 1e-4",
    "--token-count 3",
    '"tokenizer": "clip"',
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "sha256:" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "stabilityai/stable-diffusion-xl-base-1.0",
    "TextEncoderLoRA_v2_Epoch10_Step2000_Final.safetensors",
    "the key point",
    "--no-token-check",
]
# Filler words that cannot spell a secret word (no vowels but u; no y), and some non-ASCII.
FILLER = st.one_of(
    st.text("bcdfgmnqvwxz0123456789.,()!?", min_size=1, max_size=8),
    st.sampled_from(["é", "日本語", "İstanbul", "Ünïcödé", "\u00a0"]),
)


@st.composite
def planted_text(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    """(raw text, its exact masked form, the planted secrets)."""
    raw: list[str] = []
    masked: list[str] = []
    planted: list[str] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["place", "shape", "known", "decoy", "filler"]))
        if kind == "place":
            secret = draw(secret_values)
            r, m = draw(st.sampled_from(PLACES))(secret)
        elif kind == "shape":
            secret = r = draw(SHAPES)
            m = MASK
        elif kind == "known":  # registered: the characters of no other piece, so it is found only here
            secret = r = "Q!" + draw(st.text(string.ascii_letters, min_size=4, max_size=20))
            register_secret(secret)
            m = MASK
        else:
            secret = ""
            r = m = draw(st.sampled_from(DECOYS) if kind == "decoy" else FILLER)
        raw.append(r)
        masked.append(m)
        planted += [secret] if secret else []
        sep = draw(st.sampled_from([" ", "\n", "  "]))
        raw.append(sep)
        masked.append(sep)
    return "".join(raw), "".join(masked), planted


@pytest.mark.property
@given(planted_text())
def test_planted_secrets_are_masked_and_nothing_else_changes(case: tuple[str, str, list[str]]) -> None:
    raw, masked, planted = case
    out = redact(raw)
    assert out == masked  # every secret masked once, each decoy and filler word kept
    assert not [s for s in planted if s in out]
    assert redact(out) == out


@pytest.mark.property
@given(st.text(max_size=300))
def test_any_text_redacts_once_and_for_all(text: str) -> None:
    out = redact(text)
    assert redact(out) == out
    assert MASK + MASK not in out or MASK + MASK in text  # neighbouring secrets share one mask


ADVERSARIAL = st.lists(
    st.sampled_from([*"aA0_-=:\"' /@?&.\\,", "key", "token", "--", "hf_", "://", "pass", "bearer "]), max_size=12
).map("".join)


@pytest.mark.property
@given(ADVERSARIAL.filter(bool))
def test_time_stays_linear_on_repeated_patterns(unit: str) -> None:
    """100 kB of one repeated unit: the shape that made the old patterns quadratic (5 s at 10 kB)."""
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    start = time.perf_counter()
    redact(text)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "line",
    [
        "a" * MB,
        '"key": "' * (MB // 8),
        "--token " * (MB // 8),
        "token" * (MB // 5),
        "hf_" * (MB // 3),
        "OT_CUSTOM_PASS=x " * (MB // 17),
        "é" * MB,
    ],
    ids=["letters", "json-key", "flags", "token-words", "hf-prefix", "assignments", "non-ascii"],
)
def test_a_one_megabyte_line_is_handled_in_bounded_time(line: str) -> None:
    start = time.perf_counter()
    out = redact(line)
    assert time.perf_counter() - start < BOUND_S
    assert redact(out) == out


def test_secret_names_by_structure() -> None:
    secret = ["OT_CUSTOM_PASS", "HF_TOKEN", "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD_2", "MY_AUTH"]
    not_secret = [
        "HF_TOKEN_PATH",
        "SSH_AUTH_SOCK",
        "GIT_ASKPASS",
        "XAUTHORITY",
        "PATH",
        "PWD",
        "TOKENIZERS_PARALLELISM",
    ]
    assert [n for n in secret if not is_secret_name(n)] == []
    assert [n for n in not_secret if is_secret_name(n)] == []


def test_secret_named_environment_values_are_masked_anywhere() -> None:
    value = "pw-" + secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")
    register_env_secrets({"OT_CUSTOM_PASS": value, "EDITOR": "vim-is-not-a-secret"})
    assert redact(f"log: logged in with {value}.") == f"log: logged in with {MASK}."
    assert redact("EDITOR is vim-is-not-a-secret") == "EDITOR is vim-is-not-a-secret"


def test_random_runs_are_keys_and_names_are_not() -> None:
    """Hex of a key's length always; random mixed-case runs nearly always (a measured rate, seeded)."""
    rng = random.Random(12)
    mixed = [
        "".join(
            rng.choice(string.ascii_letters + string.digits + ("-_" if i % 2 else ""))
            for _ in range(rng.randint(32, 48))
        )
        for i in range(400)
    ]
    hexes = ["".join(rng.choice("0123456789abcdef") for _ in range(32)) for _ in range(50)]
    names = [
        "torch-2-5-1-cu124-cp311-cp311-linux_x86_64",
        "TextEncoderLoRA_v2_Epoch10_Step2000_Final",
        "Qwen2-VL-7B-Instruct-Captioner-Model",
        "nvidia-cuda-nvrtc-cu12-12-4-127-py3-none-any",
        "STABLE_DIFFUSION_XL_10_BASE_FINE_TUNE_LORA",
        "RealVisXL_V4.0_Lightning_BakedVAE_fp16",
        "JuggernautXL_v9Rundiffusionphoto2_LightningV2",
        "ponyDiffusionV6XL_v6StartWithThisOne",
        "animagineXLV31_v31_SDXL_1024x1024_DPMpp2M",
        "GPU-5d8c2a7e-3b1f-4c9d-8e2a-1f0b9c8d7e6a",  # CUDA_VISIBLE_DEVICES takes these
        "MIG-0c6b7a9e-1d2f-4e3a-9b8c-7d6e5f4a3b2c",
        "".join(rng.choice("0123456789abcdef") for _ in range(40)),  # a git commit
        "".join(rng.choice("0123456789abcdef") for _ in range(64)),  # a sha256
    ]
    assert [k for k in hexes if redact(f"x {k} y") != f"x {MASK} y"] == []
    caught = sum(redact(f"x {k} y") == f"x {MASK} y" for k in mixed)
    assert caught >= 0.95 * len(mixed), caught
    assert [n for n in names if redact(f"x {n} y") != f"x {n} y"] == []


def test_a_private_key_block_is_masked_whole() -> None:
    body = "\n".join(secrets.token_urlsafe(48) for _ in range(3))
    text = f"key:\n-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\nend"
    out = redact(text)
    assert out == f"key:\n-----BEGIN OPENSSH PRIVATE KEY-----{MASK}-----END OPENSSH PRIVATE KEY-----\nend"


LOG_LINES = [
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB",
    "Torch not compiled with CUDA enabled",
    "ModuleNotFoundError: No module named 'tkinter'",
    "epoch: 10%|█         | 3/30 [00:03<00:27,  1.00it/s, loss=0.1]",
]


@pytest.mark.property
@hsettings(max_examples=30)
@given(
    lines=st.lists(
        st.tuples(st.sampled_from(LOG_LINES), secret_values, st.sampled_from(PLACES)), min_size=1, max_size=5
    )
)
def test_explain_end_to_end_never_prints_a_planted_secret(tmp_path_factory, lines) -> None:
    log = tmp_path_factory.mktemp("explain") / "train.log"
    planted = []
    text = []
    for line, secret, place in lines:
        text.append(f"{line} {place(secret)[0]}")
        planted.append(secret)
    log.write_text("\n".join(text) + "\n")
    for fmt in ("text", "json"):
        run = run_main(["explain", "--format", fmt, str(log)])
        assert_calm(run)
        assert not [s for s in planted if s in run.out + run.err]
