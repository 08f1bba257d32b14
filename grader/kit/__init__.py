"""The test kit that assignment authors import: the pytest plugin, the `ranks` fixture,
probes, checks, observers (kernel launches, changed inputs), strategies, failure
descriptions, hypothesis profiles and dtype tolerances."""
