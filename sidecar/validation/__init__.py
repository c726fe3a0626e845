"""Validation of FHIR resources against the published profiles (HRex, PDex, CARIN BB, US Core), offline.

HAPI FHIR's validator runs in its own JVM (`validator/` at the project root, built by `validator/build`) with the IG
packages of `fhir_packages_dir`; `engine.Validator` keeps one JVM for many resources, `pdex-sidecar validate` checks
files with it.
"""
