package dev.pdexsidecar.validator;

import java.util.Collection;
import java.util.stream.Collectors;

/** The little JSON the protocol writes: strings and lists of them (no library needed for that). */
final class Json {
  private Json() {}

  static String string(String value) {
    if (value == null) {
      return "null";
    }
    StringBuilder out = new StringBuilder(value.length() + 2).append('"');
    for (char c : value.toCharArray()) {
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    return out.append('"').toString();
  }

  static String strings(Collection<String> values) {
    return values.stream().map(Json::string).collect(Collectors.joining(",", "[", "]"));
  }
}
