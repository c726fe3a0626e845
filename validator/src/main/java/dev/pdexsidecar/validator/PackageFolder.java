package dev.pdexsidecar.validator;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * The FHIR packages of a folder, files named {@code <package id>#<version>.tgz}, newest version first.
 *
 * <p>Versions of one IG (PDex 2.2.0 / 2.1.x / 2.0.0, US Core 7.0.0 / 6.1.0 / 3.1.1, Extensions 5.2.0 / 1.0.0) share
 * canonical URLs, and the validator takes an unversioned URL from the first package that has it: newest first means
 * the newest definition answers, while {@code url|version} still finds each version.
 */
final class PackageFolder {
  private PackageFolder() {}

  static List<Path> newestFirst(Path folder) throws IOException {
    if (!Files.isDirectory(folder)) {
      throw new IOException("FHIR packages folder " + folder + " does not exist");
    }
    List<Path> packages;
    try (Stream<Path> files = Files.list(folder)) {
      packages = files.filter(f -> f.getFileName().toString().endsWith(".tgz"))
          .sorted(Comparator.comparing(PackageFolder::version, PackageFolder::compareVersions).reversed()
              .thenComparing(f -> f.getFileName().toString()))
          .toList();
    }
    if (packages.isEmpty()) {
      throw new IOException("FHIR packages folder " + folder + " holds no .tgz package");
    }
    return packages;
  }

  static String version(Path file) {
    String name = file.getFileName().toString();
    int hash = name.lastIndexOf('#');
    return hash < 0 ? "" : name.substring(hash + 1, name.length() - ".tgz".length());
  }

  /** Numeric parts compare as numbers, so 2.10.0 is newer than 2.9.0; a pre-release tail counts after them. */
  static int compareVersions(String a, String b) {
    String[] left = a.split("[.-]");
    String[] right = b.split("[.-]");
    for (int i = 0; i < Math.max(left.length, right.length); i++) {
      String l = i < left.length ? left[i] : "";
      String r = i < right.length ? right[i] : "";
      int order = l.matches("\\d+") && r.matches("\\d+")
          ? Long.compare(Long.parseLong(l), Long.parseLong(r)) : l.compareTo(r);
      if (order != 0) {
        return order;
      }
    }
    return 0;
  }
}
