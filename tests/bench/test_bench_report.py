"""The benchmark report: one table per benchmark record, every scalar result under its dotted path."""

from __future__ import annotations

import json

from rgenima_lib.bench.__main__ import benchmark_report, main


def test_report_lists_every_scalar_of_every_record_and_skips_other_json(tmp_path):
    record = {"benchmark": "rollout", "full": False, "wall_s": 12.5,
              "machine": {"cpu_count": 2, "python": "3.11.7", "date": "2026-12-01 22:00:00"},
              "results": {"cases": [{"tokens": 1024, "ratio": 1.23456}, {"tokens": 2048, "ratio": 2.5}],
                          "note": "a|b"}}
    (tmp_path / "rollout.json").write_text(json.dumps(record))
    (tmp_path / "other.json").write_text(json.dumps({"not": "a benchmark"}))
    page = benchmark_report(tmp_path)
    assert "## rollout" in page and "## other" not in page
    assert "| `cases[0].tokens` | 1024 |" in page and "| `cases[0].ratio` | 1.235 |" in page
    assert "| `cases[1].ratio` | 2.5 |" in page and "| `note` | a/b |" in page
    assert "whole run 12.5 s; 2 CPUs" in page


def test_report_only_writes_the_readme_and_the_docs_page(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"benchmark": "x", "results": {"s": 1.0}}))
    docs = tmp_path / "docs" / "benchmarks.md"
    assert main(["--out", str(tmp_path), "--report-only", "--docs", str(docs)]) == 0
    assert (tmp_path / "README.md").read_text() == docs.read_text()
    assert "| `s` | 1 |" in docs.read_text()


def test_report_renders_a_paired_record_as_a_timing_table(tmp_path):
    from rgenima_lib.bench.paired import paired_record

    timings = paired_record({"naive": [2.0, 2.2, 1.8], "fast": [0.1, 0.1, 0.12]},
                            ratios={"naive_over_fast": ("naive", "fast")})
    # As other benchmarks nest them: a block per case in a list, beside figures that are not timings.
    record = {"benchmark": "demo", "full": False, "wall_s": 3.0, "machine": {"cpu_count": 2},
              "results": {"timings": timings, "cases": [{"tokens": 1024, **timings, "peak_mb": 5.5}],
                          "agreement": {"max_abs_diff": 1}}}
    (tmp_path / "demo.json").write_text(json.dumps(record))
    page = benchmark_report(tmp_path)
    assert "Timings `timings` (seconds, interleaved rounds):" in page
    assert "| measure | median | spread | min | max | repeats |" in page
    assert "| naive | 2 | 20% | 1.8 | 2.2 | 3 |" in page
    assert "| fast | 0.1 | 20% | 0.1 | 0.12 | 3 |" in page
    assert "| naive / fast | **20** | 15 | 22 |" in page
    assert "Timings `cases[0]`" in page and "| `cases[0].tokens` | 1024 |" in page
    assert "| `cases[0].peak_mb` | 5.5 |" in page and "| `agreement.max_abs_diff` | 1 |" in page
    # Timing summaries are shown once, in their tables, never again as dotted figures.
    assert "median_s" not in page and "`timings.ratios" not in page and "`cases[0].fast" not in page
