package dev.pdexsidecar.validator;

import ca.uhn.fhir.validation.SingleValidationMessage;

/** One finding of the validator, as the JSON the Python side reads. */
record Issue(String severity, String location, Integer line, String message, String messageId, String profile) {

  static Issue of(SingleValidationMessage message, String profile) {
    return new Issue(message.getSeverity().getCode(), message.getLocationString(), message.getLocationLine(),
        message.getMessage(), message.getMessageId(), profile);
  }

  /** A request the validator could not even read (not JSON, not a FHIR resource). */
  static Issue unreadable(String reason) {
    return new Issue("fatal", "", null, reason, "UNREADABLE", "");
  }

  String toJson() {
    return "{\"severity\":" + Json.string(severity) + ",\"location\":" + Json.string(location) + ",\"line\":"
        + (line == null ? "null" : line.toString()) + ",\"message\":" + Json.string(message) + ",\"messageId\":"
        + Json.string(messageId) + ",\"profile\":" + Json.string(profile) + "}";
  }
}
