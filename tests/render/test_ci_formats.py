"""The CI examples in scripts/ci run as written, the way a runner runs them.

GitHub Actions: the workflow's and the composite action's `run:` steps are executed in order with
the shell and environment a Linux runner gives (`bash --noprofile --norc -eo pipefail`, CI=true,
GITHUB_WORKSPACE, RUNNER_TEMP, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, GITHUB_PATH), honouring `if:`
(`always()`, `failure()`); `uses:` steps (checkout, upload-artifact) are what the test sets up or
checks itself. GitLab: before_script and script lines under `set -eo pipefail`, then the
`artifacts:reports:junit` file is read with junitparser, as GitLab does. This machine has no GPU,
so the pre-flight must fail the job exactly there, and nothing after it may run.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from junitparser import Failure, JUnitXml, Skipped

from tests.support import NVML_DATA, REPO
from tests.support.factory import make_onetrainer, otdoctor_exe

CI = REPO / "scripts" / "ci"
GH_BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


@pytest.fixture
def runner(tmp_path: Path) -> dict:
    """A self-hosted runner: a workspace with the user's repo (configs) and OneTrainer checked out,
    otdoctor preinstalled on PATH, the files GitHub hands each step."""
    ws = tmp_path / "work" / "trainrepo"
    make_onetrainer(ws / "OneTrainer", python_version="3.11")  # what `actions/checkout` would leave
    (ws / "configs").mkdir(parents=True)
    (ws / "configs" / "train.json").write_text(
        json.dumps(
            {
                "__version": 11,
                "model_type": "STABLE_DIFFUSION_XL_10_BASE",
                "training_method": "FINE_TUNE",
                "concepts": [],
            }
        )
    )
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "otdoctor").symlink_to(otdoctor_exe())
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    home = tmp_path / "runner-home"
    home.mkdir()
    env = {
        "PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(ws),
        "RUNNER_TEMP": str(temp),
        "RUNNER_OS": "Linux",
        "GITHUB_STEP_SUMMARY": str(temp / "step_summary.md"),
        "GITHUB_OUTPUT": str(temp / "output.txt"),
        "GITHUB_PATH": str(temp / "path.txt"),
        "GITHUB_ENV": str(temp / "env.txt"),
        "OTDOCTOR_CACHE_DIR": str(home / ".cache" / "otdoctor"),
    }
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_ENV"):
        Path(env[name]).touch()
    return {"ws": ws, "env": env, "tmp": tmp_path}


def _expr(value: str, contexts: dict[str, str]) -> str:
    """`${{ inputs.x }}`, `${{ github.workspace }}`: the few expressions the examples use. An
    expression the test does not know is an error, so a new one in the YAML is noticed."""

    def sub(m: re.Match) -> str:
        key = m.group(1).strip()
        if key not in contexts:
            raise AssertionError(f"the test does not evaluate ${{{{ {key} }}}}: add it")
        return contexts[key]

    return re.sub(r"\$\{\{(.*?)\}\}", sub, str(value))


def _should_run(step: dict, job_failed: bool) -> bool:
    cond = str(step.get("if", "success()")).replace("${{", "").replace("}}", "").strip()
    return {"always()": True, "success()": not job_failed, "failure()": job_failed}[cond]


def run_github_steps(steps: list[dict], env: dict[str, str], contexts: dict[str, str], cwd: Path) -> list[dict]:
    """Run `run:` steps as a Linux runner does; returns what happened to each step."""
    results = []
    failed = False
    for i, step in enumerate(steps):
        name = step.get("name") or step.get("uses") or f"step {i}"
        if not _should_run(step, failed):
            results.append({"name": name, "outcome": "skipped"})
            continue
        if "uses" in step:
            results.append({"name": name, "outcome": "uses", "with": step.get("with", {})})
            continue
        assert step.get("shell", "bash") == "bash"
        step_env = dict(env)
        extra_path = [p for p in Path(env["GITHUB_PATH"]).read_text().splitlines() if p]
        if extra_path:
            step_env["PATH"] = ":".join(reversed(extra_path)) + ":" + env["PATH"]
        step_env.update({k: _expr(v, contexts) for k, v in (step.get("env") or {}).items()})
        script = cwd / f".step-{i}.sh"
        script.write_text(step["run"])
        proc = subprocess.run(
            GH_BASH + [str(script)], cwd=str(cwd), env=step_env, capture_output=True, text=True, timeout=300
        )
        outcome = "success" if proc.returncode == 0 else "failure"
        failed = failed or outcome == "failure"
        results.append(
            {
                "name": name,
                "outcome": outcome,
                "rc": proc.returncode,
                "stdout": proc.stdout,
                "stderr": proc.stderr,
                "id": step.get("id"),
            }
        )
    return results


def _junit_cases(path: Path) -> dict:
    xml = JUnitXml.fromfile(str(path))
    return {case.name: case for suite in xml for case in suite}


def _check_ids(env: dict[str, str], cwd: Path, *args: str) -> list[str]:
    proc = subprocess.run(
        [otdoctor_exe(), "check", *args, "--format", "json"],
        env=env,
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [c["id"] for c in json.loads(proc.stdout)["checks"]]


def test_github_workflow_fails_at_the_preflight_on_a_machine_without_a_gpu(runner):
    wf = yaml.safe_load((CI / "github-workflow.yml").read_text())
    job = wf["jobs"]["train"]
    assert "self-hosted" in job["runs-on"] and wf["defaults"]["run"]["shell"] == "bash"
    contexts = {"github.workspace": str(runner["ws"])}
    env = {**runner["env"], **{k: _expr(v, contexts) for k, v in wf["env"].items()}}
    results = run_github_steps(job["steps"], env, contexts, runner["ws"])
    by_name = {r["name"]: r for r in results}

    assert by_name["Install otdoctor"]["outcome"] == "success"
    assert by_name["Install otdoctor"]["stdout"].strip() == "otdoctor 0.1.0"
    pre = by_name["Pre-flight"]
    assert pre["outcome"] == "failure" and pre["rc"] == 1, pre
    assert re.search(r"^::error title=otdoctor gpu\.driver::no NVIDIA GPU", pre["stdout"], re.M), pre["stdout"]
    summary = Path(runner["env"]["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("## otdoctor check") and "| ❌ | `gpu.driver` | no NVIDIA GPU" in summary

    # The JUnit step ran anyway (if: always()), and its file reads as a test report.
    assert by_name["JUnit report"]["outcome"] == "success"
    cases = _junit_cases(runner["ws"] / "otdoctor-junit.xml")
    assert set(cases) == set(_check_ids(env, runner["ws"], "--ot-dir", env["OT_DIR"], "--config", env["OT_CONFIG"]))
    assert any(isinstance(r, Failure) and r.message.startswith("no NVIDIA GPU") for r in cases["gpu.driver"].result)
    assert cases["gpu.driver"].classname == "otdoctor.gpu"
    assert by_name["Keep the JUnit report"]["with"]["path"] == "otdoctor-junit.xml"

    # Nothing expensive ran after the failure; the bug-report bundle did (if: failure()).
    assert by_name["Smoke run (speed and memory gate)"]["outcome"] == "skipped"
    assert by_name["Train"]["outcome"] == "skipped"
    assert by_name["Bug-report bundle"]["outcome"] == "success", by_name["Bug-report bundle"]
    assert (runner["ws"] / by_name["Keep the bug report"]["with"]["path"]).stat().st_size > 1000
    assert [r["outcome"] for r in results].count("failure") == 1


def _action(runner, **inputs: str) -> tuple[list[dict], dict]:
    action = yaml.safe_load((CI / "otdoctor-action" / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    values = {f"inputs.{k}": str(v.get("default", "")) for k, v in action["inputs"].items()}
    values.update({f"inputs.{k.replace('_', '-')}": v for k, v in inputs.items()})
    Path(runner["env"]["GITHUB_OUTPUT"]).write_text("")
    return run_github_steps(action["runs"]["steps"], runner["env"], values, runner["ws"]), action


def test_composite_action_fails_without_a_gpu_and_leaves_a_junit_report(runner):
    results, action = _action(runner, ot_dir="OneTrainer", config="configs/train.json")
    check = next(r for r in results if r.get("id") == "check")
    assert check["outcome"] == "failure" and check["rc"] == 1
    assert "::error title=otdoctor gpu.driver::no NVIDIA GPU" in check["stdout"]
    assert Path(runner["env"]["GITHUB_OUTPUT"]).read_text() == "junit=otdoctor-junit.xml\n"
    assert action["outputs"]["junit"]["value"] == "${{ steps.check.outputs.junit }}"
    cases = _junit_cases(runner["ws"] / "otdoctor-junit.xml")
    assert any(isinstance(r, Failure) for r in cases["gpu.driver"].result)
    assert not any(isinstance(r, Failure) for r in cases["config.file"].result)  # the config was read


def test_composite_action_inputs_reach_the_command(runner):
    (runner["ws"] / "reports").mkdir(exist_ok=True)
    results, _ = _action(
        runner, ot_dir="OneTrainer", require_gpu="false", strict="false", offline="true", junit="reports/preflight.xml"
    )
    cases = _junit_cases(runner["ws"] / "reports" / "preflight.xml")
    # Without require-gpu, a machine with no NVIDIA hardware skips the GPU checks instead of failing.
    assert not any(isinstance(r, Failure) for r in cases["gpu.driver"].result)
    assert any(isinstance(r, Skipped) for r in cases["gpu.driver"].result)
    assert "junit=reports/preflight.xml" in Path(runner["env"]["GITHUB_OUTPUT"]).read_text()


def test_gitlab_job_fails_and_its_junit_artifact_reads_as_a_test_report(runner):
    ci = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    job = ci["otdoctor-preflight"]
    assert "gpu" in job["tags"] and job["artifacts"]["when"] == "always"
    project = runner["ws"]
    env = {k: v for k, v in runner["env"].items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    env.update(GITLAB_CI="true", CI_PROJECT_DIR=str(project))
    for key, value in ci["variables"].items():  # GitLab expands $VARS in variables
        env[key] = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), str(value))
    lines = job["before_script"] + job["script"]
    script = "set -eo pipefail\n" + "\n".join(lines) + "\n"
    proc = subprocess.run(
        ["bash", "-c", script], cwd=str(project), env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr
    assert re.search(r"✗ .*\(gpu\.driver\): no NVIDIA GPU", proc.stdout), proc.stdout  # the text report in the job log
    junit = project / job["artifacts"]["reports"]["junit"]
    cases = _junit_cases(junit)
    assert any(isinstance(r, Failure) for r in cases["gpu.driver"].result)
    assert ci["train"]["needs"] == ["otdoctor-preflight"]


def test_preflight_passes_the_gpu_gate_on_a_recorded_gpu_machine(runner):
    """The same pre-flight command, on a machine whose NVML answers come from a recorded H100:
    the GPU checks pass, so a failure there is about the machine, not the workflow."""
    wf = yaml.safe_load((CI / "github-workflow.yml").read_text())
    step = next(s for s in wf["jobs"]["train"]["steps"] if s.get("name") == "Pre-flight")
    contexts = {"github.workspace": str(runner["ws"])}
    env = {
        **runner["env"],
        **{k: _expr(v, contexts) for k, v in wf["env"].items()},
        "OTDOCTOR_NVML_SNAPSHOT": str(NVML_DATA / "h100-idle.json"),
    }
    results = run_github_steps([step], env, contexts, runner["ws"])
    assert not re.search(r"^::error title=otdoctor gpu\.driver::", results[0]["stdout"], re.M), results[0]["stdout"]
    verdict = subprocess.run(
        [
            otdoctor_exe(),
            "check",
            "--ot-dir",
            env["OT_DIR"],
            "--require-gpu",
            "--only",
            "gpu.driver",
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert [(c["id"], c["status"]) for c in json.loads(verdict.stdout)["checks"]] == [("gpu.driver", "ok")]


@pytest.mark.slow
def test_workflow_smoke_step_is_a_speed_and_memory_gate(runner, torch_venv):
    """The smoke step as written, on the CPU (`--tiny`, real torch): an attainable MIN_ITS passes, an
    impossible one fails the step; a memory gate that cannot be measured (no GPU) fails rather than
    passing unchecked. That is what stops a slow or wrong machine before the real run."""
    wf = yaml.safe_load((CI / "github-workflow.yml").read_text())
    step = next(s for s in wf["jobs"]["train"]["steps"] if s.get("name", "").startswith("Smoke run"))
    contexts = {"github.workspace": str(runner["ws"])}
    env = {
        **runner["env"],
        **{k: _expr(v, contexts) for k, v in wf["env"].items()},
        "SMOKE_ARGS": f"--tiny --steps 2 --warmup 1 --python {torch_venv / 'bin' / 'python'}",
    }
    fast = run_github_steps([step], {**env, "MIN_ITS": "0.001", "MAX_VRAM_GB": ""}, contexts, runner["ws"])[0]
    assert fast["outcome"] == "success", fast["stdout"] + fast["stderr"]
    slow = run_github_steps([step], {**env, "MIN_ITS": "100000", "MAX_VRAM_GB": ""}, contexts, runner["ws"])[0]
    assert slow["outcome"] == "failure" and slow["rc"] == 1, slow
    assert "100000" in slow["stdout"] + slow["stderr"]
    vram = run_github_steps([step], {**env, "MIN_ITS": "0.001"}, contexts, runner["ws"])[0]  # MAX_VRAM_GB: 22
    assert vram["outcome"] == "failure" and "cannot check --max-vram-gb" in vram["stdout"] + vram["stderr"]
