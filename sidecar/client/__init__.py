"""The requesting side: this payer as a client of other payers' APIs."""
