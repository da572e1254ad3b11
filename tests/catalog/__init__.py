"""The bad-input catalog: one module of cases per input family, run by tests/workflow/test_bad_input_catalog.py."""
