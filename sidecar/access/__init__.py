"""Who may see what: the caller of a request, the members it may see, and the per-resource check."""
