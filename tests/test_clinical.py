"""Diagnosis mapping, stage proportions and the clinical table checks."""

import numpy as np
import pandas as pd
import pytest

from rgenima_lib.cohort import clinical as clin
from rgenima_lib.errors import InputDataError


@pytest.mark.parametrize("n", [4, 7, 60, 1998, 2000])
def test_stage_counts_sum_and_paper_proportions(n):
    counts = clin.stage_counts(n)
    assert sum(counts.values()) == n
    assert min(counts.values()) >= 1
    paper = np.array([644, 100, 916, 338]) / 1998
    got = np.array([counts[s] for s in clin.STAGES]) / n
    assert np.abs(got - paper).max() <= max(1.5 / n, 1e-9) or n < 20


def test_stage_counts_reproduce_paper_cohort():
    assert clin.stage_counts(1998) == {"NC": 644, "SMC": 100, "MCI": 916, "AD": 338}


def test_ptids_are_adni_formatted_and_unique():
    ptids = clin.make_ptids(500, np.random.default_rng(0))
    assert len(set(ptids)) == 500
    assert all(len(p) == 10 and p[3:6] == "_S_" and p[:3].isdigit() and p[6:].isdigit() for p in ptids)


def test_clinical_table_codes_and_ages():
    rng = np.random.default_rng(1)
    stages = np.repeat(clin.STAGES, [300, 300, 300, 300])
    table = clin.make_clinical_table(clin.make_ptids(1200, rng), stages, rng)
    assert set(table["DX_bl"]) == {"CN", "SMC", "EMCI", "LMCI", "AD"}
    staged, excluded = clin.baseline_stages(table)
    assert excluded == []
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
    assert excluded and "011_S_0004" in excluded[0]


def test_missing_column_is_named():
    with pytest.raises(InputDataError, match="DX_bl"):
        clin.baseline_stages(pd.DataFrame({"PTID": ["a"]}), path="x.csv")
