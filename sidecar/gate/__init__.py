"""The one gate every partner answer passes: allow-listed queries, the disclosure decision, the sidecar's own paging."""
