"""Diagnosis mapping, stage proportions, reading clinical tables as exported, and their checks."""

import numpy as np
import pandas as pd
import pytest

from rgenima_lib.cohort import clinical as clin
from rgenima_lib.errors import InputDataError
from rgenima_lib.synthetic import clinical as synth_clin
from rgenima_lib.vocabulary import STAGES


@pytest.mark.parametrize("n", [4, 7, 60, 1998, 2000])
def test_stage_counts_sum_and_paper_proportions(n):
    counts = synth_clin.stage_counts(n)
    assert sum(counts.values()) == n
    assert min(counts.values()) >= 1
    paper = np.array([644, 100, 916, 338]) / 1998
    got = np.array([counts[s] for s in STAGES]) / n
    assert np.abs(got - paper).max() <= max(1.5 / n, 1e-9) or n < 20


def test_stage_counts_reproduce_paper_cohort():
    assert synth_clin.stage_counts(1998) == {"NC": 644, "SMC": 100, "MCI": 916, "AD": 338}


def test_ptids_are_adni_formatted_and_unique():
    ptids = synth_clin.make_ptids(500, np.random.default_rng(0))
    assert len(set(ptids)) == 500
    assert all(len(p) == 10 and p[3:6] == "_S_" and p[:3].isdigit() and p[6:].isdigit() for p in ptids)


def test_clinical_table_codes_and_ages():
    rng = np.random.default_rng(1)
    stages = np.repeat(STAGES, [300, 300, 300, 300])
    table = synth_clin.make_clinical_table(synth_clin.make_ptids(1200, rng), stages, rng)
    assert set(table["DX_bl"]) == {"CN", "SMC", "EMCI", "LMCI", "AD"}
    staged, excluded = clin.baseline_stages(table)
    assert excluded.empty
    assert (staged["stage"].to_numpy() == stages).all()
    ad_age = table.loc[stages == "AD", "AGE"].mean()
    assert abs(ad_age - 74.99) < 1.5
    female_smc = (table.loc[stages == "SMC", "PTGENDER"] == "Female").mean()
    assert abs(female_smc - 0.59) < 0.1


def _table(rows):
    return pd.DataFrame(rows, columns=["PTID", "VISCODE", "DX_bl"])


def test_unknown_diagnosis_names_file_subject_and_code():
    table = _table([["011_S_0002", "bl", "CN"], ["011_S_0003", "bl", "Dementia?"]])
    with pytest.raises(InputDataError) as err:
        clin.baseline_stages(table, path="ADNIMERGE.csv")
    msg = str(err.value)
    assert "ADNIMERGE.csv" in msg and "011_S_0003" in msg and "'Dementia?'" in msg and "Fix:" in msg


def test_duplicate_baseline_rows_are_refused():
    table = _table([["011_S_0002", "bl", "CN"], ["011_S_0002", "bl", "AD"], ["011_S_0002", "m06", "AD"]])
    with pytest.raises(InputDataError, match="011_S_0002.*duplicate"):
        clin.baseline_stages(table, path="ADNIMERGE.csv")


def test_followup_visits_are_ignored_and_blank_dx_excluded():
    table = _table([["011_S_0002", "bl", "LMCI"], ["011_S_0002", "m06", "AD"], ["011_S_0004", "bl", None]])
    staged, excluded = clin.baseline_stages(table)
    assert staged["subject"].tolist() == ["011_S_0002"]
    assert staged["stage"].tolist() == ["MCI"]
    assert excluded["subject"].tolist() == ["011_S_0004"] and excluded["reason"].tolist() == ["blank DX_bl"]


def test_missing_column_is_named():
    with pytest.raises(InputDataError, match="DX_bl"):
        clin.baseline_stages(pd.DataFrame({"PTID": ["a"]}), path="x.csv")


# --- reading the table as users have it -------------------------------------------------------------------

HEADER = "RID,PTID,VISCODE,DX_bl,AGE,PTGENDER,SITE\n"


def _csv(tmp_path, text, *, encoding="utf-8", name="ADNIMERGE.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("encoding, prefix, logged", [
    ("utf-8", b"", "UTF-8"), ("utf-8", b"\xef\xbb\xbf", "UTF-8 with BOM"), ("cp1252", b"", "cp1252")])
def test_read_clinical_encodings(tmp_path, caplog, encoding, prefix, logged):
    text = HEADER + "2,011_S_0002,bl,CN,74.3,Male,Montréal – Québec\n3,011_S_0003,bl,AD,81.0,Female,Zürich\n"
    path = tmp_path / "ADNIMERGE.csv"
    path.write_bytes(prefix + text.encode(encoding))
    with caplog.at_level("INFO", logger="rgenima"):
        table = clin.read_clinical(path)
    assert list(table.columns) == ["RID", "PTID", "VISCODE", "DX_bl", "AGE", "PTGENDER", "SITE"]
    assert table["SITE"].tolist() == ["Montréal – Québec", "Zürich"]
    assert f"read as {logged}" in caplog.text and "ADNIMERGE.csv" in caplog.text
    staged, _ = clin.baseline_stages(table, path=path)
    assert staged["stage"].tolist() == ["NC", "AD"]


def test_read_clinical_latin1_fallback(tmp_path, caplog):
    # 0x81 is undefined in cp1252: only latin-1 decodes it.
    path = tmp_path / "ADNIMERGE.csv"
    path.write_bytes((HEADER + "2,011_S_0002,bl,CN,74.3,Male,").encode() + b"X\x81\n")
    with caplog.at_level("INFO", logger="rgenima"):
        table = clin.read_clinical(path)
    assert "read as latin-1" in caplog.text and table["SITE"].iloc[0] == "X\x81"


def test_utf16_table_is_refused(tmp_path):
    path = tmp_path / "ADNIMERGE.csv"
    path.write_bytes((HEADER + "2,011_S_0002,bl,CN,74,Male,x\n").encode("utf-16"))
    with pytest.raises(InputDataError, match="UTF-16.*CSV UTF-8"):
        clin.read_clinical(path)


def test_header_spaces_stripped_with_note(tmp_path, caplog):
    path = _csv(tmp_path, "PTID , VISCODE,DX_bl \n011_S_0002,bl,LMCI\n")
    with caplog.at_level("INFO", logger="rgenima"):
        table = clin.read_clinical(path)
    assert list(table.columns) == ["PTID", "VISCODE", "DX_bl"]
    assert "'DX_bl ' -> 'DX_bl'" in caplog.text and "'PTID ' -> 'PTID'" in caplog.text
    assert clin.baseline_stages(table)[0]["stage"].tolist() == ["MCI"]


def test_header_cells_equal_after_stripping_are_refused(tmp_path):
    with pytest.raises(InputDataError, match="'DX_bl'.*twice"):
        clin.read_clinical(_csv(tmp_path, "PTID,DX_bl,DX_bl \n011_S_0002,CN,AD\n"))


@pytest.mark.parametrize("text, problem", [("", "is empty"), ("\n\n", "is empty"),
                                           (HEADER, "header but no data rows"),
                                           (HEADER + ",,,,,,\n,,,,,,\n", "header but no data rows")])
def test_empty_tables_are_clear_errors(tmp_path, text, problem):
    with pytest.raises(InputDataError) as err:
        clin.read_clinical(_csv(tmp_path, text))
    assert problem in str(err.value) and "ADNIMERGE.csv" in str(err.value) and "Fix:" in str(err.value)


def test_line_numbers_count_blank_lines_and_header(tmp_path):
    table = clin.read_clinical(_csv(tmp_path, "PTID,VISCODE,DX_bl\n011_S_0002,bl,CN\n\n011_S_0003,bl,AD\n"))
    assert table.index.tolist() == [2, 4]


@pytest.mark.parametrize("rows, lines", [
    ("011_S_0002,bl,CN\n,bl,AD\n", "line(s) 3."),           # one blank: was staged as subject ""
    (",bl,CN\n011_S_0003,bl,AD\n  ,bl,AD\n", "line(s) 2, 4."),  # two blanks: was a TypeError
])
def test_blank_ptids_name_their_lines(tmp_path, rows, lines):
    table = clin.read_clinical(_csv(tmp_path, "PTID,VISCODE,DX_bl\n" + rows))
    with pytest.raises(InputDataError) as err:
        clin.baseline_stages(table, path="ADNIMERGE.csv")
    assert "blank PTID" in str(err.value) and lines in str(err.value) and "ADNIMERGE.csv" in str(err.value)


def test_viscode_case_and_month_zero_alias(tmp_path):
    table = _table([["011_S_0002", "BL", "CN"], ["011_S_0003", "m00", "AD"], ["011_S_0004", " Bl ", "EMCI"],
                    ["011_S_0005", "sc", "AD"], ["011_S_0002", "m06", "AD"]])
    staged, excluded = clin.baseline_stages(table)
    assert staged["subject"].tolist() == ["011_S_0002", "011_S_0003", "011_S_0004"]
    assert staged["stage"].tolist() == ["NC", "AD", "MCI"]
    assert excluded.empty  # 011_S_0005 (screening only) has no baseline row: the manifest reports it


def test_identical_duplicate_rows_collapse_with_note(caplog):
    table = _table([["011_S_0002", "bl", "CN"], ["011_S_0003", "bl", "AD"], ["011_S_0002", "bl", "CN"]])
    with caplog.at_level("INFO", logger="rgenima"):
        staged, _ = clin.baseline_stages(table, path="ADNIMERGE.csv")
    assert staged["subject"].tolist() == ["011_S_0002", "011_S_0003"]
    assert "1 identical duplicate baseline row(s) collapsed (lines 4)" in caplog.text


def test_conflicting_duplicate_rows_name_lines_and_values():
    table = _table([["011_S_0002", "bl", "CN"], ["011_S_0003", "bl", "AD"], ["011_S_0002", "bl", "LMCI"]])
    with pytest.raises(InputDataError) as err:
        clin.baseline_stages(table, path="ADNIMERGE.csv")
    msg = str(err.value)
    assert "subject 011_S_0002" in msg and "lines 2, 4" in msg and "DX_bl 'CN' vs 'LMCI'" in msg


def test_blank_dx_is_excluded_with_reason():
    staged, excluded = clin.baseline_stages(_table([["011_S_0002", "bl", "CN"], ["011_S_0004", "bl", "  "]]))
    assert staged["subject"].tolist() == ["011_S_0002"]
    assert excluded.to_dict("records") == [{"subject": "011_S_0004", "reason": "blank DX_bl"}]


# --- subject IDs --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["011_S 0002", "x'y", "x$(touch owned)", "x`touch owned`", "x${IFS}y", "011_S_0002#2",
                                 "a/b", "-rf", "..", "tab\there", "é011"])
def test_unsafe_subject_ids_are_refused_with_line_and_repr(bad):
    table = _table([["011_S_0002", "bl", "CN"], [bad, "bl", "AD"]])
    with pytest.raises(InputDataError) as err:
        clin.baseline_stages(table, path="ADNIMERGE.csv")
    msg = str(err.value)
    assert f"line 3: {bad!r}" in msg and "ADNIMERGE.csv" in msg and "not safe subject IDs" in msg


def test_adni_ptids_pass_and_pattern_is_configurable():
    ptids = synth_clin.make_ptids(50, np.random.default_rng(3))
    clin.check_subject_ids(pd.Series(ptids), path="x.csv")
    with pytest.raises(InputDataError, match="line 2: '011_S_0002'"):
        clin.check_subject_ids(pd.Series(["011_S_0002"], index=[2]), path="x.csv", pattern=r"^S\d+$")
    clin.check_subject_ids(pd.Series(["S+1"]), path="x.csv", pattern=r"^S\+\d$")
    # '#' (a comment when read back), '/' and whitespace stay refused however wide the pattern.
    for bad in ("a#b", "a/b", "a b"):
        with pytest.raises(InputDataError):
            clin.check_subject_ids(pd.Series([bad]), path="x.csv", pattern=".*")
    with pytest.raises(InputDataError, match="not a regular expression"):
        clin.check_subject_ids(pd.Series(["a"]), path="x.csv", pattern="([")
