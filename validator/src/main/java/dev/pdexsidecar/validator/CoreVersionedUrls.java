package dev.pdexsidecar.validator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.BaseValidationSupport;
import org.hl7.fhir.instance.model.api.IBaseResource;

/**
 * R4 core definitions asked for with their version ({@code http://hl7.org/fhir/StructureDefinition/Patient|4.0.1},
 * as IG packages write them, e.g. PDex's member groups and Provenance): the core support knows them only by the
 * unversioned URL, so without this they "cannot be resolved".
 */
final class CoreVersionedUrls extends BaseValidationSupport {
  private static final String CORE = "http://hl7.org/fhir/";
  private static final String VERSION = "|4.0.1";
  private final IValidationSupport core;

  CoreVersionedUrls(FhirContext context, IValidationSupport core) {
    super(context);
    this.core = core;
  }

  private static String unversioned(String url) {
    return url != null && url.startsWith(CORE) && url.endsWith(VERSION)
        ? url.substring(0, url.length() - VERSION.length()) : null;
  }

  @Override
  public IBaseResource fetchStructureDefinition(String url) {
    String plain = unversioned(url);
    return plain == null ? null : core.fetchStructureDefinition(plain);
  }

  @Override
  public IBaseResource fetchValueSet(String url) {
    String plain = unversioned(url);
    return plain == null ? null : core.fetchValueSet(plain);
  }

  @Override
  public IBaseResource fetchCodeSystem(String url) {
    String plain = unversioned(url);
    return plain == null ? null : core.fetchCodeSystem(plain);
  }

  @Override
  public String getName() {
    return "R4 core by versioned URL";
  }
}
