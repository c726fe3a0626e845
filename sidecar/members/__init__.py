"""The members' side: the member page at the new payer (sign-in with the payer's identity provider, education,
opt-in, state, withdrawal) and former members' access at the old payer (zero-knowledge sign-in, who received
their data, withdrawal). Served under `{public}/member/` as a sub-application with its own session auth: the
bearer and route-table middlewares concern `/fhir` only."""
