"""The command line on the embedded models with tiny settings."""

import pytest

from sklearn_cap.__main__ import main

from conftest import needs_embedded

pytestmark = [needs_embedded, pytest.mark.embedded]


def test_priors_command(data_home, tmp_path, capsys):
    main(["priors", "--scorer", "embedding", "--n-texts", "2", "--n-samples", "8", "--data-home", data_home,
          "--cache-dir", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert "CAP priors, scorer=embedding" in out and out.count("top words:") == 2


def test_demo_command_tiny(data_home, tmp_path, capsys):
    report = tmp_path / "report.html"
    args = ["demo", "--n-classes", "3", "--shots", "2", "--epochs", "1", "--max-test", "12", "--n-samples", "8",
            "--data-home", data_home, "--cache-dir", str(tmp_path / "cache"), "--report", str(report), "--quiet"]
    main(args)
    out = capsys.readouterr().out
    assert "vanilla" in out and "CAP Hybrid" in out and "comprehensiveness" in out
    html = report.read_text()
    assert "<table>" in html and "data:image/png;base64," in html and "<span" in html
    # a re-run takes the fitted models from the cache
    main(args)
    rerun = capsys.readouterr().out
    rows = [line for line in rerun.splitlines() if line.startswith(("vanilla", "CAP Hybrid"))]
    assert len(rows) == 2 and all(line.endswith("cached") for line in rows)
    first_rows = [line for line in out.splitlines() if line.startswith(("vanilla", "CAP Hybrid"))]
    assert [r.split()[1] for r in rows] == [r.split()[1] for r in first_rows]  # same accuracy
