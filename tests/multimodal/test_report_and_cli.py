"""Report pictures, the plugin integration (pytester) and the ``aisp multimodal`` command."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from pytest_aisp.cli import main
from pytest_aisp.multimodal import report

ROOT = Path(__file__).resolve().parents[2]


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def test_pictures_for_each_modality(digits, tones, clips):
    x, _ = digits
    assert _png_size(report.comparison_png("image", x[:3], 255 - x[:3]))[1] == 2 * report.THUMB + report.GAP
    _, waves, _ = tones
    assert _png_size(report.comparison_png("audio", waves[:2], waves[:2] * 0.5, sample_rate=8000))[0] > 0
    _, video, _, _ = clips
    assert _png_size(report.comparison_png("video", video[:1], video[:1]))[0] > 5 * report.THUMB


def test_plugin_records_agreement_and_pictures(pytester, generated):
    pytester.makepyfile(
        test_mm=f"""
        import sys
        import numpy as np
        import pytest
        sys.path.insert(0, {str(ROOT / "fixtures" / "multimodal")!r})
        import make_fixtures as mf
        from pytest_aisp import InvarianceFailure
        from pytest_aisp.multimodal import assert_invariant

        G = mf.GENERATED
        data = np.load(G / "digits_test.npz")
        X, Y = data["x"][:60], data["y"][:60]

        def test_twin_passes():
            from pytest_aisp.recorder import current_record

            assert_invariant(mf.DigitsCNN(G / "digits_augmented.pt", "twin"), X,
                             perturbations="image:brightness", search_smallest=False)
            record = current_record()
            assert record.metrics["mm.agreement.image:brightness@1"] >= 0.9
            assert not record.findings

        def test_plain_records_findings_and_pictures():
            from pytest_aisp.recorder import current_record

            with pytest.raises(InvarianceFailure):
                assert_invariant(mf.DigitsCNN(G / "digits_plain.pt", "plain"), X,
                                 perturbations="image:brightness", search_smallest=False)
            record = current_record()
            assert record.findings[0].rule_id == "AISP-MM-INVARIANCE"
            assert record.attachments and record.attachments[0].content[1:4] == b"PNG"

        @pytest.mark.xfail(strict=True, raises=InvarianceFailure)
        def test_plain_is_known_weak():
            assert_invariant(mf.DigitsCNN(G / "digits_plain.pt", "plain"), X,
                             perturbations="image:brightness", search_smallest=False)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, xfailed=1)


def test_attachment_is_recorded_in_a_test_record(plain_cnn, digits):
    from pytest_aisp.multimodal import evaluate_invariance
    from pytest_aisp.recorder import recording

    x, _ = digits
    with recording("t::pictures") as record:
        evaluate_invariance(plain_cnn, x, perturbations="image:brightness", severities=(1.0,))
    assert record.attachments and record.attachments[0].mime == "image/png"
    assert "image:brightness" in record.attachments[0].title
    assert _png_size(record.attachments[0].content)[0] > 0
    assert record.findings and record.metrics["mm.agreement.image:brightness@1"] < 0.9


def test_cli_lists_perturbations(capsys):
    assert main(["multimodal", "list", "--modality", "audio", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"audio:white_noise", "audio:mp3"}
    assert all(r["severity"] for r in rows)


def test_cli_applies_to_image_and_text_files(tmp_path, capsys):
    from PIL import Image

    source = tmp_path / "in.png"
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(source)
    assert (
        main(
            [
                "multimodal",
                "apply",
                str(source),
                "-p",
                "image:occlusion",
                "-s",
                "1",
                "-o",
                str(tmp_path / "out.png"),
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "out.png") as out:
        assert np.asarray(out).min() == 0
    text = tmp_path / "in.txt"
    text.write_text("I do not know\nit is late\n")
    assert (
        main(
            [
                "multimodal",
                "apply",
                str(text),
                "-p",
                "text:contractions",
                "-s",
                "1",
                "--backend",
                "native",
                "-o",
                str(tmp_path / "out.txt"),
            ]
        )
        == 0
    )
    assert (tmp_path / "out.txt").read_text().splitlines() == ["I don't know", "it's late"]


def test_cli_errors_exit_2(tmp_path, capsys):
    assert (
        main(["multimodal", "apply", str(tmp_path / "missing.png"), "-p", "image:blur", "-o", "x.png"]) == 2
    )
    assert main(["multimodal", "apply", str(tmp_path), "-p", "image:blurr", "-o", "x.png"]) == 2
    assert "Did you mean image:blur" in capsys.readouterr().err


def test_cli_end_to_end_in_a_subprocess(tmp_path):
    import soundfile

    wav = tmp_path / "tone.wav"
    soundfile.write(str(wav), (0.3 * np.sin(np.arange(8000) * 0.3)).astype(np.float32), 8000)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_aisp.cli",
            "multimodal",
            "apply",
            str(wav),
            "-p",
            "audio:reverb",
            "-s",
            "0.8",
            "-o",
            str(tmp_path / "out.wav"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    out, rate = soundfile.read(str(tmp_path / "out.wav"))
    assert rate == 8000 and len(out) == 8000
