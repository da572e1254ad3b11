"""Subject-level splits, the data configurations of paper 4.4.3, and the leakage audit."""
