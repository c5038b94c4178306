"""augment_texts and `aisp augment`."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_aisp.cli import main
from pytest_aisp.findings import AispError
from pytest_aisp.nlp import augment_texts
from pytest_aisp.nlp.transforms import SplitText

ROOT = Path(__file__).resolve().parents[2]


def test_augment_texts_makes_distinct_deterministic_copies():
    texts = ["the hotel room was spotless and charming", "what a dreadful concert"]
    copies = augment_texts(texts, recipe="typos,homoglyphs", n=3, seed=1)
    assert len(copies) == 2 and all(len(c) == 3 for c in copies)
    for original, variants in zip(texts, copies):
        assert original not in variants and len(set(variants)) == 3
        assert all(len(SplitText.of(v).words) == len(SplitText.of(original).words) for v in variants)
    assert augment_texts(texts[::-1], recipe="typos,homoglyphs", n=3, seed=1) == copies[::-1]


def test_augmented_copies_keep_the_label_of_a_trained_model_mostly(sentiment_model, sentiment_test):
    texts, labels = sentiment_test
    copies = augment_texts(texts, recipe="typos", n=2, seed=0, words_fraction=0.1)
    flat = [c for cs in copies for c in cs]
    flat_labels = [label for cs, label in zip(copies, labels) for _ in cs]
    agreement = (sentiment_model.predict(flat) == flat_labels).mean()
    assert agreement > 0.4  # augmentation changes inputs; the point of adversarial training is the rest


def test_synonym_augmentation(wordnet_installed):
    (copies,) = augment_texts(["the staff were friendly"], recipe="synonyms", n=2)
    assert copies and all(c != "the staff were friendly" for c in copies)


@pytest.mark.parametrize("kwargs", [{"recipe": "teleport"}, {"n": 0}, {"words_fraction": 0.0}])
def test_augment_bad_options(kwargs):
    with pytest.raises(AispError):
        augment_texts(["text"], **kwargs)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_cli_augment_streams_rows_with_their_labels(generated, tmp_path, capsys):
    out = tmp_path / "aug.csv"
    code = main(
        [
            "augment",
            "--in",
            str(generated["test"]),
            "--text-column",
            "text",
            "--out",
            str(out),
            "--recipe",
            "typos,homoglyphs",
            "--n",
            "2",
        ]
    )
    assert code == 0
    source, rows = _rows(generated["test"]), _rows(out)
    assert len(rows) > len(source) * 2
    by_row: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_row.setdefault(row["aisp_source_row"], []).append(row)
    for index, original in enumerate(source):
        group = by_row[str(index)]
        assert group[0]["text"] == original["text"]
        assert {r["label"] for r in group} == {original["label"]}
    assert "augment:" in capsys.readouterr().err


def test_cli_augment_errors_exit_2(generated, tmp_path, capsys):
    code = main(
        [
            "augment",
            "--in",
            str(generated["test"]),
            "--text-column",
            "review",
            "--out",
            str(tmp_path / "x.csv"),
        ]
    )
    assert code == 2
    assert "--text-column 'review'" in capsys.readouterr().err
    assert (
        main(
            [
                "augment",
                "--in",
                str(tmp_path / "none.csv"),
                "--text-column",
                "t",
                "--out",
                str(tmp_path / "x.csv"),
                "--recipe",
                "typos",
            ]
        )
        == 2
    )


def test_cli_augment_end_to_end_in_a_subprocess(generated, tmp_path):
    out = tmp_path / "aug.csv"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_aisp.cli",
            "augment",
            "--in",
            str(generated["test"]),
            "--text-column",
            "text",
            "--out",
            str(out),
            "--recipe",
            "deepwordbug",
            "--n",
            "1",
            "--no-original",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "rows" in completed.stderr
    assert len(_rows(out)) == 200


def test_cli_augment_never_overwrites_its_input(generated, tmp_path, capsys):
    """``--out`` naming the input file would have truncated it before reading (fails on the previous commit)."""
    source = tmp_path / "data.csv"
    source.write_bytes(generated["test"].read_bytes())
    before = source.read_bytes()
    code = main(["augment", "--in", str(source), "--text-column", "text", "--out", str(source), "--quiet"])
    assert code == 2 and "is the input file" in capsys.readouterr().err
    assert source.read_bytes() == before


def test_cli_augment_does_not_create_missing_folders(generated, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "dir" / "aug.csv"
    code = main(["augment", "--in", str(generated["test"]), "--text-column", "text", "--out", str(out), "--quiet"])
    assert code == 2 and "does not exist; create it first" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_cli_augment_unreadable_row_names_the_row_and_leaves_no_partial_file(tmp_path, capsys):
    import csv

    source = tmp_path / "big.csv"
    source.write_text("text,label\n" + "ok,1\n" + '"' + "x" * (csv.field_size_limit() + 10) + '",0\n')
    out = tmp_path / "aug.csv"
    code = main(["augment", "--in", str(source), "--text-column", "text", "--out", str(out), "--quiet"])
    assert code == 2 and "row 2 is not readable CSV" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == [source]
