package dev.pdexsidecar.hapi;

import ca.uhn.fhir.batch2.api.IJobMaintenanceService;
import ca.uhn.fhir.batch2.maintenance.JobMaintenanceServiceImpl;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import jakarta.annotation.PostConstruct;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.Configuration;

/**
 * How often HAPI's batch2 maintenance pass moves jobs (bulk export) from one step to the next. HAPI's default is
 * one minute per step, so a small export takes minutes; {@code hapi.fhir.batch2_maintenance_interval_millis} sets it
 * (HAPI's own integration tests use 200 ms), and fast tracking lets a step with one chunk start the next at once.
 * Wiring of HAPI's own settings, nothing more.
 */
@Configuration
public class Batch2Pace {
	private final IJobMaintenanceService maintenance;
	private final JpaStorageSettings storageSettings;
	private final long intervalMillis;

	public Batch2Pace(IJobMaintenanceService maintenance, JpaStorageSettings storageSettings,
			@Value("${hapi.fhir.batch2_maintenance_interval_millis:60000}") long intervalMillis) {
		this.maintenance = maintenance;
		this.storageSettings = storageSettings;
		this.intervalMillis = intervalMillis;
	}

	@PostConstruct
	void apply() {
		storageSettings.setJobFastTrackingEnabled(true);
		if (maintenance instanceof JobMaintenanceServiceImpl impl) {
			impl.setScheduledJobFrequencyMillis(intervalMillis);
		}
	}
}
