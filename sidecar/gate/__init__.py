"""Who may see what, and the one gate every partner answer passes: the route table and its authorize middleware,
the caller and its members, allow-listed queries, the disclosure decision, the sidecar's own paging."""
