"""The hostile-client suite: the public port against careless and malicious clients (issue 10)."""
