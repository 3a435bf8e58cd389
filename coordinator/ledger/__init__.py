"""The usage ledger: one SQLite row per chat request, written off the request path, and its reports."""
