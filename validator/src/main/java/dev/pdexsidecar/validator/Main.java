package dev.pdexsidecar.validator;

import ca.uhn.fhir.context.FhirContext;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * {@code java -cp pdex-validator.jar:PACKAGES_DIR/ dev.pdexsidecar.validator.Main --packages PACKAGES_DIR
 * [--require PROFILE_URL]...}
 *
 * <p>Loads every package of the folder, checks that each required profile and the definitions it uses are there, warms
 * the validator up and answers one JSON line: {@code {"ready":true,"packages":[...],"ms":N}}, or
 * {@code {"error":"..."}} and exit status 2. Then one request per stdin line, the profile URLs separated by spaces
 * (none: the resource's own meta.profile and base definition), a tab, and the resource as one line of JSON; each is
 * answered with one line {@code {"issues":[{"severity","location","line","message","messageId","profile"}],"ms":N}}.
 * The JVM starts once for many resources, since starting it and loading the packages takes seconds.
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) throws Exception {
    // Only protocol lines go to stdout: anything a library prints goes to stderr instead.
    PrintStream protocol = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    System.setOut(System.err);

    Path folder = null;
    List<String> required = new ArrayList<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      switch (args[i]) {
        case "--packages" -> folder = Path.of(args[i + 1]);
        case "--require" -> required.add(args[i + 1]);
        default -> fail(protocol, "unknown argument " + args[i]);
      }
    }
    if (folder == null || args.length % 2 != 0) {
      fail(protocol, "usage: Main --packages DIR [--require PROFILE_URL]...");
    }

    long started = System.nanoTime();
    Engine engine;
    List<Path> packages;
    try {
      packages = PackageFolder.newestFirst(folder);
      engine = new Engine(FhirContext.forR4(), packages);
    } catch (Exception e) {
      fail(protocol, "cannot load the FHIR packages of " + folder + ": " + e.getMessage());
      return;
    }
    Set<String> missing = new TreeSet<>();
    for (String profile : required) {
      missing.addAll(engine.missingDefinitions(profile));
    }
    if (!missing.isEmpty()) {
      fail(protocol, "Failed to retrieve profile: no package in " + folder + " defines " + String.join(", ", missing));
    }
    long loaded = System.nanoTime();
    System.err.printf("pdex-validator: %d packages loaded in %d ms%n", packages.size(), (loaded - started) / 1_000_000);
    // The first validation builds the validator's own structures (seconds): do it before saying ready.
    engine.validate("{\"resourceType\":\"Basic\",\"code\":{\"text\":\"warm-up\"}}", List.of());
    System.err.printf("pdex-validator: warmed up in %d ms%n", (System.nanoTime() - loaded) / 1_000_000);
    List<String> names = packages.stream().map(p -> p.getFileName().toString()).collect(Collectors.toList());
    protocol.println("{\"ready\":true,\"packages\":" + Json.strings(names) + ",\"ms\":"
        + (System.nanoTime() - started) / 1_000_000 + "}");

    BufferedReader requests = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line = requests.readLine(); line != null; line = requests.readLine()) {
      protocol.println(answer(engine, line));
    }
  }

  static String answer(Engine engine, String line) {
    long started = System.nanoTime();
    int tab = line.indexOf('\t');
    List<Issue> issues;
    if (tab < 0) {
      issues = List.of(Issue.unreadable("a request is the profile URLs, a tab, and the resource"));
    } else {
      List<String> profiles = Arrays.stream(line.substring(0, tab).split(" ")).filter(p -> !p.isBlank()).toList();
      try {
        issues = engine.validate(line.substring(tab + 1), profiles);
      } catch (RuntimeException e) {  // HAPI's parser refuses what is not a FHIR resource
        issues = List.of(Issue.unreadable(e.getMessage()));
      }
    }
    String json = issues.stream().map(Issue::toJson).collect(Collectors.joining(",", "[", "]"));
    return "{\"issues\":" + json + ",\"ms\":" + String.format(Locale.ROOT, "%.1f", (System.nanoTime() - started) / 1e6) + "}";
  }

  private static void fail(PrintStream protocol, String reason) {
    protocol.println("{\"error\":" + Json.string(reason) + "}");
    System.err.println("pdex-validator: " + reason);
    System.exit(2);
  }
}
