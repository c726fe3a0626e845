"""The disclosure filter: what of a granted member's data may leave to a partner payer, and in what form."""
