"""The conformance suite QA teams run against any payer-to-payer deployment (this product, a peer, plain HAPI).

Written from the specs, not from the product: it imports only the shared SMART client (`sidecar.client.smart`)
and the validation step (`sidecar.validation`); tests/unit/test_layering.py holds it to that.
"""
