"""FHIR helpers shared by every module: OperationOutcome answers and the R4 resource-type list."""
