"""The test kit that assignment authors import: the pytest plugin, probes, checks,
strategies, failure descriptions, hypothesis profiles and dtype tolerances."""
