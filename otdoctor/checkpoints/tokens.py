"""Why a web page was saved instead of a model, and how to give the site the token it asks for.

Civitai answers a download without a valid API key with its sign-in page (HTML) instead of the
file; Hugging Face answers a gated repository with 401/403 (or a login page, when a browser or
wget fetched it) until the licence is accepted and a token is sent. These texts say how to set a
token; none of them ever holds one.
"""

from __future__ import annotations

from pathlib import Path

from otdoctor.checkpoints.catalog import CatalogEntry

CIVITAI_TOKEN_HELP = (
    "create an API key at https://civitai.com/user/account (API Keys), then run again with "
    "CIVITAI_TOKEN set or --token-file FILE"
)
CIVITAI = "civitai"
HUGGINGFACE = "huggingface"


def page_origin(head: bytes, entry: CatalogEntry | None, path: Path) -> str | None:
    """Which site a saved HTML page came from: its own words, else where the model lives."""
    text = head.lower()
    if b"civitai" in text:
        return CIVITAI
    if b"huggingface" in text or b"hugging face" in text:
        return HUGGINGFACE
    if entry is not None:
        return entry.source
    return HUGGINGFACE if any(p.startswith("models--") for p in path.parts) else None


def page_cause(origin: str | None, entry: CatalogEntry | None) -> str:
    """The likely cause of a saved login page and how to fix it, as one clause."""
    name = entry.name if entry is not None else "NAME"
    if origin == CIVITAI:
        return (
            "likely cause: Civitai requires an API token for this download. Create an API key at "
            "https://civitai.com/user/account (API Keys) and download again with CIVITAI_TOKEN set "
            f"(`otdoctor models download {name}`, or --token-file FILE); a download URL opened in a "
            "browser or wget needs your key in its `token` query parameter"
        )
    if origin == HUGGINGFACE:
        repo = entry.repo if entry is not None and entry.repo else "the repo"
        return f"likely cause: {repo} is gated on Hugging Face. {hf_access_help(entry)}"
    return (
        "likely cause: the site wanted a login. Civitai needs an API key (CIVITAI_TOKEN, "
        "https://civitai.com/user/account); a gated Hugging Face repo needs its licence accepted "
        "and `hf auth login` or HF_TOKEN"
    )


def hf_access_help(entry: CatalogEntry | None) -> str:
    """How to get a gated Hugging Face file: the licence on its page, then a token (never shown)."""
    page = f"https://huggingface.co/{entry.repo}" if entry is not None and entry.repo else "its model page"
    return (
        f"Accept the licence on {page}, then log in with `hf auth login` or set HF_TOKEN (OneTrainer "
        "reads huggingface_token from its secrets.json) and download again"
    )


def token_step(origin: str | None) -> str:
    """The step before downloading again, as a comment line a fix plan can show (it runs nothing)."""
    if origin == CIVITAI:
        return "# before the download: create an API key at https://civitai.com/user/account, export CIVITAI_TOKEN"
    if origin == HUGGINGFACE:
        return "# before the download: accept the licence on the model's Hugging Face page, then `hf auth login`"
    return "# before the download: log in where it comes from (Civitai: CIVITAI_TOKEN; Hugging Face: `hf auth login`)"
