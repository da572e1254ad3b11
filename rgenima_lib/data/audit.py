"""The leakage audit: for any split, the subjects on both sides (docs/design.md, "Subject-level splits").

Under the subject-level protocol the count must be 0 for every configuration
and fold. Under the paper's protocol (augment, then split samples) nearly
every test subject also has permuted copies in training: the test score then
measures recognition of a seen genome, not staging of a new subject. The
audit table shows both protocols side by side; every row of a leaky protocol
carries ``leaky = True``, and later results tables carry the data set's
``leaky`` flag (``meta.json``).
"""

from __future__ import annotations

import pandas as pd

from rgenima_lib.data.datasets import LEAKY_PROTOCOLS
from rgenima_lib.genetics.augment import CANONICAL

AUDIT_COLUMNS = ["protocol", "leaky", "used", "config", "fold", "train_samples", "test_samples",
                 "train_subjects", "test_subjects", "subjects_both_sides", "test_samples_of_train_subjects",
                 "test_augmented_samples"]


def audit_split(samples: pd.DataFrame) -> dict:
    """Overlap counts of one split.

    Parameters
    ----------
    samples : DataFrame
        A data set (``SAMPLE_COLUMNS``: subject, perm_seed, side).

    Returns
    -------
    dict: train_samples, test_samples, train_subjects, test_subjects,
    subjects_both_sides (subjects with samples on both sides),
    test_samples_of_train_subjects (test samples whose subject is in
    training), test_augmented_samples (permuted copies on the test side).
    """
    train = samples[samples["side"] == "train"]
    test = samples[samples["side"] == "test"]
    train_subjects = set(train["subject"])
    test_subjects = set(test["subject"])
    return {
        "train_samples": int(len(train)), "test_samples": int(len(test)),
        "train_subjects": len(train_subjects), "test_subjects": len(test_subjects),
        "subjects_both_sides": len(train_subjects & test_subjects),
        "test_samples_of_train_subjects": int(test["subject"].isin(train_subjects).sum()),
        "test_augmented_samples": int((test["perm_seed"] != CANONICAL).sum()),
    }


def audit_table(datasets, used_protocol: str) -> pd.DataFrame:
    """The audit table of many splits.

    Parameters
    ----------
    datasets : iterable of ((protocol, config, fold), samples)
    used_protocol : str
        The protocol the pipeline trains with (``split.protocol``).

    Returns
    -------
    DataFrame ``AUDIT_COLUMNS``, one row per split, then one ``sum`` row per
    protocol and configuration adding up the folds (subject counts there are
    subject-fold pairs).
    """
    rows = [{"protocol": p, "leaky": p in LEAKY_PROTOCOLS, "used": p == used_protocol, "config": c,
             "fold": str(k), **audit_split(s)} for (p, c, k), s in datasets]
    table = pd.DataFrame(rows, columns=AUDIT_COLUMNS)
    numeric = AUDIT_COLUMNS[5:]
    totals = (table.groupby(["protocol", "leaky", "used", "config"], sort=False)[numeric].sum().reset_index()
              .assign(fold="sum"))
    return pd.concat([table, totals[AUDIT_COLUMNS]], ignore_index=True)
