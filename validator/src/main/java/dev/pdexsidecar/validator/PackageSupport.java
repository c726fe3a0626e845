package dev.pdexsidecar.validator;

import ca.uhn.fhir.context.FhirContext;
import org.hl7.fhir.common.hapi.validation.support.NpmPackageValidationSupport;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.CodeSystem;

/**
 * One package's conformance resources, except CodeSystems published as {@code content = not-present} stubs (CPT,
 * ICD-10-CM, CMS place of service in THO): while such a stub is in the chain, every value set built on its system
 * fails to expand and a required binding to it is an error. Without the stub, the unknown-code-system rule makes those
 * codes a warning, since they cannot be checked offline; codes of systems that are present are still checked.
 */
final class PackageSupport extends NpmPackageValidationSupport {
  PackageSupport(FhirContext context) {
    super(context);
  }

  @Override
  public void addCodeSystem(IBaseResource codeSystem) {
    if (codeSystem instanceof CodeSystem r4 && r4.getContent() == CodeSystem.CodeSystemContentMode.NOTPRESENT) {
      return;
    }
    super.addCodeSystem(codeSystem);
  }
}
