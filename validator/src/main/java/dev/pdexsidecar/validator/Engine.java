package dev.pdexsidecar.validator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationOptions;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.r4.model.CanonicalType;
import org.hl7.fhir.r4.model.ElementDefinition;
import org.hl7.fhir.r4.model.StructureDefinition;

/** HAPI's R4 instance validator over the packages of a folder, R4 core and offline terminology. */
final class Engine {
  private final IValidationSupport chain;
  private final FhirValidator validator;

  /** Loads the packages in this order; each must be on the classpath (the folder is), or this fails. */
  Engine(FhirContext context, List<Path> packages) throws IOException {
    List<IValidationSupport> supports = new ArrayList<>();
    for (Path file : packages) {
      PackageSupport support = new PackageSupport(context);
      support.loadPackageFromClasspath("classpath:/" + file.getFileName());
      supports.add(support);
    }
    DefaultProfileValidationSupport core = new DefaultProfileValidationSupport(context);
    supports.add(core);
    supports.add(new CoreVersionedUrls(context, core));
    supports.add(new CommonCodeSystemsTerminologyService(context));
    // Before the in-memory terminology service: codes of systems no package holds (CPT, ICD-10-CM) are a warning.
    UnknownCodeSystemWarningValidationSupport unknownSystems = new UnknownCodeSystemWarningValidationSupport(context);
    unknownSystems.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);
    supports.add(unknownSystems);
    supports.add(new InMemoryTerminologyServerValidationSupport(context));
    supports.add(new SnapshotGeneratingValidationSupport(context));
    chain = new ValidationSupportChain(ValidationSupportChain.CacheConfiguration.defaultValues(), supports);
    FhirInstanceValidator module = new FhirInstanceValidator(chain);
    // A meta.profile no package defines is an error, never a silent pass.
    module.setErrorForUnknownProfiles(true);
    validator = context.newValidator().registerValidatorModule(module);
  }

  /**
   * What the profile needs that no loaded package defines: the profile itself, or a profile one of its elements is
   * typed with (extensions, constrained types), followed through those definitions too.
   */
  Set<String> missingDefinitions(String profile) {
    Set<String> missing = new TreeSet<>();
    Set<String> seen = new HashSet<>();
    Deque<String> pending = new ArrayDeque<>(List.of(profile));
    while (!pending.isEmpty()) {
      String url = pending.pop();
      if (!seen.add(url)) {
        continue;
      }
      if (!(chain.fetchStructureDefinition(url) instanceof StructureDefinition definition)) {
        missing.add(url.equals(profile) ? url : url + " (needed by " + profile + ")");
        continue;
      }
      for (ElementDefinition element : definition.getSnapshot().getElement()) {
        for (ElementDefinition.TypeRefComponent type : element.getType()) {
          for (CanonicalType typeProfile : type.getProfile()) {
            pending.push(typeProfile.getValue());
          }
        }
      }
    }
    return missing;
  }

  /** The issues of one resource: against each profile given, or its own meta.profile and base definition. */
  List<Issue> validate(String resource, List<String> profiles) {
    List<Issue> issues = new ArrayList<>();
    for (String profile : profiles.isEmpty() ? List.of("") : profiles) {
      ValidationOptions options = new ValidationOptions().addProfileIfNotBlank(profile);
      for (SingleValidationMessage message : validator.validateWithResult(resource, options).getMessages()) {
        issues.add(Issue.of(message, profile));
      }
    }
    return issues;
  }
}
