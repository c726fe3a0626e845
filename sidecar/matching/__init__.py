"""`$member-match`: who, among this payer's members, a partner payer's request describes, and whether to say so."""
