"""The aisp manifest / provenance / bom / pins commands: exit codes 0, 1, 2 and their output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_aisp.cli import main


@pytest.fixture
def signed(project: Path, keys) -> Path:
    path = project / "aisp-manifest.json"
    assert (
        main(
            ["manifest", "create", str(project), "--kind", "dataset=data/*", "--key", str(keys["ed25519"][0])]
        )
        == 0
    )
    return path


def test_create_then_verify_intact(signed: Path, keys, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["manifest", "verify", str(signed), "--pubkey", str(keys["ed25519"][1])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("INTACT") and "signature valid" in out and "8 entries" in out


def test_verify_prints_a_table_and_exits_1(
    project: Path, signed: Path, keys, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "model" / "model.safetensors").write_bytes(b"x")
    (project / "extra.py").write_text("import os\n")
    capsys.readouterr()
    pub = str(keys["ed25519"][1])
    assert main(["manifest", "verify", str(signed), "--pubkey", pub]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["CHANGE", "PATH", "DETAIL"]
    assert out[1].split()[:2] == ["added", "extra.py"]
    assert out[2].split()[:2] == ["modified", "model/model.safetensors"]
    assert out[-1].startswith("CHANGED:") and "0 bytes" not in out[-1]
    assert main(["manifest", "verify", str(signed), "--pubkey", pub, "--fail-on", "critical"]) == 1
    (project / "model" / "model.safetensors").unlink()
    capsys.readouterr()
    # added + missing are high
    assert main(["manifest", "verify", str(signed), "--pubkey", pub, "--fail-on", "critical"]) == 0


def test_verify_json_output(project: Path, signed: Path, keys, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "train.py").unlink()
    capsys.readouterr()
    assert main(["manifest", "verify", str(signed), "--pubkey", str(keys["ed25519"][1]), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["signature"] == "valid" and data["authenticated"] is True
    assert [f["rule_id"] for f in data["findings"]] == ["AISP-SUPPLY-MISSING"]
    assert data["metrics"]["files_checked"] == 8


def test_malformed_manifest_exits_2(
    project: Path, signed: Path, keys, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(signed.read_text())
    data["entries"][0]["path"] = "/etc/passwd"
    signed.write_text(json.dumps(data))
    pub = str(keys["ed25519"][1])
    assert main(["manifest", "verify", str(signed), "--pubkey", pub]) == 2
    assert "absolute" in capsys.readouterr().err
    assert main(["manifest", "verify", str(project / "nope.json"), "--pubkey", pub]) == 2


def test_wrong_key_exits_1(signed: Path, keys, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "verify", str(signed), "--pubkey", str(keys["other_ed25519"][1])]) == 1
    assert capsys.readouterr().out.startswith("SIGNATURE")


def test_scan_records_verdicts_of_models(project: Path) -> None:
    assert main(["manifest", "create", str(project), "--scan"]) == 0
    entries = {e["path"]: e for e in json.loads((project / "aisp-manifest.json").read_text())["entries"]}
    assert entries["model/model.safetensors"]["scan"]["ok"] is True
    assert "scan" not in entries["data/train.csv"]


def test_keygen_sign_model_signing_and_bom(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    assert main(["manifest", "keygen", str(private), str(public), "--type", "ecdsa-p256-sha256"]) == 0
    manifest = tmp_path / "model.json"
    assert main(["manifest", "create", str(project / "model"), "-o", str(manifest)]) == 0
    assert main(["manifest", "sign", str(manifest), "--key", str(private), "--format", "model-signing"]) == 0
    assert main(["manifest", "verify", str(project / "model" / "model.sig"), "--pubkey", str(public)]) == 0
    assert main(["bom", str(manifest), "-o", str(tmp_path / "bom.json")]) == 2  # the manifest is unsigned
    assert main(["bom", str(manifest), "-o", str(tmp_path / "bom.json"), "--allow-unsigned"]) == 0
    assert json.loads((tmp_path / "bom.json").read_text())["specVersion"] == "1.6"
    assert main(["manifest", "sign", str(manifest), "--key", str(private)]) == 0
    assert main(["bom", str(manifest), "-o", str(tmp_path / "bom.json"), "--pubkey", str(public)]) == 0


def test_provenance_run_and_verify(
    project: Path, keys, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    argv = [
        "provenance",
        "run",
        "--materials",
        "data",
        "train.py",
        "--products",
        "model/model.safetensors",
        "--key",
        str(keys["ecdsa"][0]),
        "-o",
        "prov.json",
        "--",
        sys.executable,
        "train.py",
    ]
    assert main(argv) == 0
    assert main(["provenance", "verify", "prov.json", "--pubkey", str(keys["ecdsa"][1])]) == 0
    (project / "data" / "train.csv").write_text("f0,f1,f2,f3,label\n")
    capsys.readouterr()
    assert main(["provenance", "verify", "prov.json", "--pubkey", str(keys["ecdsa"][1])]) == 1
    assert "AISP-SUPPLY-PROVENANCE" in capsys.readouterr().out
    assert main(["provenance", "run", "--products", "model", "--"]) == 2


def test_pins_exit_codes(project: Path, tmp_path: Path) -> None:
    assert main(["pins", str(project)]) == 1
    assert main(["pins", str(project), "--fail-on", "medium"]) == 0
    assert main(["pins", str(tmp_path)]) == 0


def test_end_to_end_subprocess(project: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    cmd = [sys.executable, "-m", "pytest_aisp.cli", "manifest"]
    assert subprocess.run([*cmd, "create", str(project)], env=env, capture_output=True).returncode == 0
    (project / "Jenkinsfile").write_text("pipeline { }\n")
    done = subprocess.run(
        [*cmd, "verify", str(project / "aisp-manifest.json"), "--allow-unsigned"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "modified  Jenkinsfile" in done.stdout
    assert "integrity not authenticated" in done.stdout


def test_sarif_output(project: Path, signed: Path, keys, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "train.py").write_text("import os\n")
    capsys.readouterr()
    code = main(["manifest", "verify", str(signed), "--pubkey", str(keys["ed25519"][1]), "--format", "sarif"])
    captured = capsys.readouterr()
    assert code == 1
    sarif = json.loads(captured.out)
    assert sarif["version"] == "2.1.0"
    assert sarif["runs"][0]["results"][0]["ruleId"] == "AISP-SUPPLY-MODIFIED"


def test_failed_create_leaves_no_tmp_file(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").mkdir()
    assert main(["manifest", "create", str(project), "-o", str(tmp_path / "out")]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_keygen_refuses_to_overwrite_and_identical_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    assert main(["manifest", "keygen", str(private), str(public)]) == 0
    before = private.read_bytes(), public.read_bytes()
    capsys.readouterr()
    assert main(["manifest", "keygen", str(private), str(public)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (private.read_bytes(), public.read_bytes()) == before
    assert main(["manifest", "keygen", str(tmp_path / "new.pem"), str(public)]) == 2
    assert not (tmp_path / "new.pem").exists() and public.read_bytes() == before[1]
    same = tmp_path / "same.pem"
    assert main(["manifest", "keygen", str(same), str(same)]) == 2
    assert "give two paths" in capsys.readouterr().err and not same.exists()
    private.chmod(0o644)
    assert main(["manifest", "keygen", str(private), str(public), "--force"]) == 0
    assert private.read_bytes() != before[0] and private.stat().st_mode & 0o077 == 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_verify_reads_the_key_from_the_configuration(
    project: Path, tmp_path: Path, keys, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """aisp manifest verify reads [tool.aisp] manifest, [tool.aisp.supply] pubkey and AISP_PUBKEY, as
    the artifact_manifest fixture does."""
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    manifest = work / "release.json"
    assert main(["manifest", "create", str(project), "-o", str(manifest), "--key", str(keys["ed25519"][0])]) == 0
    (work / "pyproject.toml").write_text(
        f'[tool.aisp]\nmanifest = "release.json"\n[tool.aisp.supply]\npubkey = "{keys["ed25519"][1]}"\n'
    )
    monkeypatch.chdir(work / "sub")  # from a subdirectory: paths resolve against the project root
    capsys.readouterr()
    assert main(["manifest", "verify"]) == 0
    assert "signature valid" in capsys.readouterr().out
    monkeypatch.setenv("AISP_PUBKEY", str(keys["other_ed25519"][1]))  # the environment is above the file
    assert main(["manifest", "verify"]) == 1
    assert "not by the given key" in capsys.readouterr().out


# A whole pickled module, as teams save them: its class is not on the shipped allowlist.
PICKLED_MODULE = b"\x80\x02cmypkg.models\nDigitsCNN\n)\x81."


def test_manifest_scan_reads_the_scan_configuration(
    tmp_path: Path, keys, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """manifest create --scan and manifest verify judge models under [tool.aisp.scan], as aisp scan does."""
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    (repo / "models" / "cnn_full.pt").write_bytes(PICKLED_MODULE)
    (repo / "pyproject.toml").write_text(
        f'[tool.aisp.scan]\nallow = ["mypkg.models.DigitsCNN"]\n[tool.aisp.supply]\npubkey = "{keys["ed25519"][1]}"\n'
    )
    monkeypatch.chdir(repo)
    key = str(keys["ed25519"][0])
    assert main(["scan", "models"]) == 0  # aisp scan agrees
    assert main(["manifest", "create", "models", "-o", "m.json", "--scan", "--key", key]) == 0
    entry = json.loads(Path("m.json").read_text())["entries"][0]
    assert entry["scan"]["ok"] is True and entry["scan"]["policy_source"] == "[tool.aisp.scan]"
    capsys.readouterr()
    assert main(["manifest", "verify", "m.json"]) == 0
    assert capsys.readouterr().out.startswith("INTACT")
    # Nothing changed, but the policy did: the model is judged again under the one in force.
    policy = tmp_path / "strict.toml"
    policy.write_text("[scan]\nallow = []\n")
    assert main(["manifest", "verify", "m.json", "--policy", str(policy)]) == 1
    out = capsys.readouterr().out
    assert "UNSAFE" in out and "under the configured scan policy" in out and "CHANGE " not in out
    assert out.splitlines()[-1].startswith("UNSAFE:")
    # --policy at create time, recorded and then honoured by verify with the same file.
    assert main(["manifest", "create", "models", "-o", "m.json", "--policy", str(policy), "--key", key]) == 0
    assert json.loads(Path("m.json").read_text())["entries"][0]["scan"]["ok"] is False
    capsys.readouterr()
    assert main(["manifest", "verify", "m.json", "--policy", str(policy)]) == 1
    assert "when the manifest was made" in capsys.readouterr().out
    assert main(["manifest", "verify", "m.json"]) == 0  # under [tool.aisp.scan] the model is fine
