"""The conformance suite: pytest modules run with ``-p conformance.plugin --pyargs conformance.suite``."""
