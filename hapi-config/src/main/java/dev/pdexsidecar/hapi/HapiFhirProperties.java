package dev.pdexsidecar.hapi;

import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * The subset of the HAPI JPA starter's {@code hapi.fhir.*} keys this build honours, under the same names, so one
 * application.yaml serves both this build and the official hapiproject/hapi image.
 */
@ConfigurationProperties(prefix = "hapi.fhir")
public class HapiFhirProperties {
	private String fhir_version = "R4";
	private String server_address;
	private boolean use_apache_address_strategy;
	private boolean use_apache_address_strategy_https;
	private boolean bulk_export_enabled;
	private Integer bulk_export_file_retention_period_hours;
	private boolean binary_storage_enabled;
	private Long max_binary_size;
	private boolean allow_external_references;
	private boolean delete_enabled = true;
	private boolean allow_multiple_delete;
	private JpaStorageSettings.ClientIdStrategyEnum client_id_strategy = JpaStorageSettings.ClientIdStrategyEnum.ALPHANUMERIC;
	private Long reuse_cached_search_results_millis;
	private int default_page_size = 20;
	private int max_page_size = 200;
	private boolean default_pretty_print;

	public String getFhir_version() { return fhir_version; }
	public void setFhir_version(String value) { fhir_version = value; }
	public String getServer_address() { return server_address; }
	public void setServer_address(String value) { server_address = value; }
	public boolean getUse_apache_address_strategy() { return use_apache_address_strategy; }
	public void setUse_apache_address_strategy(boolean value) { use_apache_address_strategy = value; }
	public boolean getUse_apache_address_strategy_https() { return use_apache_address_strategy_https; }
	public void setUse_apache_address_strategy_https(boolean value) { use_apache_address_strategy_https = value; }
	public boolean getBulk_export_enabled() { return bulk_export_enabled; }
	public void setBulk_export_enabled(boolean value) { bulk_export_enabled = value; }
	public Integer getBulk_export_file_retention_period_hours() { return bulk_export_file_retention_period_hours; }
	public void setBulk_export_file_retention_period_hours(Integer value) { bulk_export_file_retention_period_hours = value; }
	public boolean getBinary_storage_enabled() { return binary_storage_enabled; }
	public void setBinary_storage_enabled(boolean value) { binary_storage_enabled = value; }
	public Long getMax_binary_size() { return max_binary_size; }
	public void setMax_binary_size(Long value) { max_binary_size = value; }
	public boolean getAllow_external_references() { return allow_external_references; }
	public void setAllow_external_references(boolean value) { allow_external_references = value; }
	public boolean getDelete_enabled() { return delete_enabled; }
	public void setDelete_enabled(boolean value) { delete_enabled = value; }
	public boolean getAllow_multiple_delete() { return allow_multiple_delete; }
	public void setAllow_multiple_delete(boolean value) { allow_multiple_delete = value; }
	public JpaStorageSettings.ClientIdStrategyEnum getClient_id_strategy() { return client_id_strategy; }
	public void setClient_id_strategy(JpaStorageSettings.ClientIdStrategyEnum value) { client_id_strategy = value; }
	public Long getReuse_cached_search_results_millis() { return reuse_cached_search_results_millis; }
	public void setReuse_cached_search_results_millis(Long value) { reuse_cached_search_results_millis = value; }
	public int getDefault_page_size() { return default_page_size; }
	public void setDefault_page_size(int value) { default_page_size = value; }
	public int getMax_page_size() { return max_page_size; }
	public void setMax_page_size(int value) { max_page_size = value; }
	public boolean getDefault_pretty_print() { return default_pretty_print; }
	public void setDefault_pretty_print(boolean value) { default_pretty_print = value; }
}
