package dev.pdexsidecar.hapi;

import ca.uhn.fhir.batch2.jobs.export.BulkDataExportProvider;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.api.dao.DaoRegistry;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.binary.interceptor.BinaryStorageInterceptor;
import ca.uhn.fhir.jpa.binary.provider.BinaryAccessProvider;
import ca.uhn.fhir.jpa.binstore.DatabaseBinaryContentStorageSvcImpl;
import ca.uhn.fhir.jpa.config.HibernatePropertiesProvider;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.config.util.ResourceCountCacheUtil;
import ca.uhn.fhir.jpa.dao.FulltextSearchSvcImpl;
import ca.uhn.fhir.jpa.dao.IFulltextSearchSvc;
import ca.uhn.fhir.jpa.dao.search.HSearchSortHelperImpl;
import ca.uhn.fhir.jpa.dao.search.IHSearchSortHelper;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.provider.DaoRegistryResourceSupportedSvc;
import ca.uhn.fhir.jpa.provider.IJpaSystemProvider;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.search.IStaleSearchDeletingSvc;
import ca.uhn.fhir.jpa.search.StaleSearchDeletingSvcImpl;
import ca.uhn.fhir.jpa.util.ResourceCountCache;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.api.IResourceSupportedSvc;
import ca.uhn.fhir.rest.server.ApacheProxyAddressStrategy;
import ca.uhn.fhir.rest.server.HardcodedServerAddressStrategy;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import jakarta.persistence.EntityManagerFactory;
import org.hibernate.dialect.Dialect;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.context.annotation.Primary;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.core.env.EnumerablePropertySource;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.transaction.annotation.EnableTransactionManagement;

import java.util.Properties;
import javax.sql.DataSource;

/**
 * The beans HAPI's JPA configuration expects its host application to supply, built from HAPI's own classes and
 * the {@code hapi.fhir.*} settings. No FHIR behaviour of its own.
 */
@Configuration
@EnableTransactionManagement
@Import(ThreadPoolFactoryConfig.class)
public class HapiJpaWiring {
	private static final String JPA_PROPERTY_PREFIX = "spring.jpa.properties.";

	@Bean
	public JpaStorageSettings jpaStorageSettings(HapiFhirProperties props) {
		JpaStorageSettings settings = new JpaStorageSettings();
		settings.setAllowExternalReferences(props.getAllow_external_references());
		settings.setDeleteEnabled(props.getDelete_enabled());
		settings.setAllowMultipleDelete(props.getAllow_multiple_delete());
		settings.setResourceClientIdStrategy(props.getClient_id_strategy());
		settings.setReuseCachedSearchResultsForMillis(props.getReuse_cached_search_results_millis());
		if (props.getBulk_export_file_retention_period_hours() != null) {
			settings.setBulkExportFileRetentionPeriodHours(props.getBulk_export_file_retention_period_hours());
		}
		return settings;
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings();
	}

	@Bean
	public SubscriptionSettings subscriptionSettings() {
		return new SubscriptionSettings();
	}

	@Bean
	public IFulltextSearchSvc fullTextSearchSvc() {
		return new FulltextSearchSvcImpl();
	}

	@Bean
	public IStaleSearchDeletingSvc staleSearchDeletingSvc() {
		return new StaleSearchDeletingSvcImpl();
	}

	@Bean
	public DatabaseBackedPagingProvider databaseBackedPagingProvider(HapiFhirProperties props) {
		DatabaseBackedPagingProvider paging = new DatabaseBackedPagingProvider();
		paging.setDefaultPageSize(props.getDefault_page_size());
		paging.setMaximumPageSize(props.getMax_page_size());
		return paging;
	}

	@Bean
	public IResourceSupportedSvc resourceSupportedSvc(DaoRegistry daoRegistry) {
		return new DaoRegistryResourceSupportedSvc(daoRegistry);
	}

	@Bean(name = "myResourceCountsCache")
	public ResourceCountCache resourceCountsCache(IFhirSystemDao<?, ?> systemDao) {
		return ResourceCountCacheUtil.newResourceCountCache(systemDao);
	}

	@Primary
	@Bean
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			DataSource dataSource, ConfigurableListableBeanFactory beanFactory, FhirContext fhirContext,
			JpaStorageSettings storageSettings, ConfigurableEnvironment environment) {
		LocalContainerEntityManagerFactoryBean factory =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
		factory.setPersistenceUnitName("HAPI_PU");
		factory.setDataSource(dataSource);
		factory.setJpaProperties(jpaProperties(environment));
		return factory;
	}

	/** Every {@code spring.jpa.properties.*} setting, from any source (yaml, environment), for Hibernate. */
	private static Properties jpaProperties(ConfigurableEnvironment environment) {
		Properties properties = new Properties();
		environment.getPropertySources().forEach(source -> {
			if (source instanceof EnumerablePropertySource<?> enumerable) {
				for (String name : enumerable.getPropertyNames()) {
					if (name.startsWith(JPA_PROPERTY_PREFIX)) {
						String key = name.substring(JPA_PROPERTY_PREFIX.length());
						properties.putIfAbsent(key, environment.getProperty(name));
					}
				}
			}
		});
		return properties;
	}

	@Primary
	@Bean
	public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
		return new JpaTransactionManager(entityManagerFactory);
	}

	@Bean
	public IHSearchSortHelper hSearchSortHelper(ISearchParamRegistry searchParamRegistry) {
		return new HSearchSortHelperImpl(searchParamRegistry);
	}

	@Primary
	@Bean
	public HibernatePropertiesProvider hibernatePropertiesProvider(LocalContainerEntityManagerFactoryBean factory) {
		Dialect dialect = instantiateDialect((String) factory.getJpaPropertyMap().get("hibernate.dialect"));
		return new HibernatePropertiesProvider() {
			@Override
			public Dialect getDialect() {
				return dialect;
			}
		};
	}

	private static Dialect instantiateDialect(String className) {
		if (className == null || className.isBlank()) {
			throw new IllegalStateException("spring.jpa.properties.hibernate.dialect must name a HAPI dialect");
		}
		try {
			return (Dialect) Class.forName(className).getDeclaredConstructor().newInstance();
		} catch (ReflectiveOperationException e) {
			throw new IllegalStateException("cannot create Hibernate dialect " + className, e);
		}
	}

	@Bean
	public DatabaseBinaryContentStorageSvcImpl binaryStorageSvc(HapiFhirProperties props) {
		DatabaseBinaryContentStorageSvcImpl storage = new DatabaseBinaryContentStorageSvcImpl();
		if (props.getMax_binary_size() != null) {
			storage.setMaximumBinarySize(props.getMax_binary_size());
		}
		return storage;
	}

	@Bean
	public RestfulServer restfulServer(
			HapiFhirProperties props, IFhirSystemDao<?, ?> systemDao, ResourceProviderFactory resourceProviders,
			IJpaSystemProvider systemProvider, JpaStorageSettings storageSettings,
			ISearchParamRegistry searchParamRegistry, IValidationSupport validationSupport,
			DatabaseBackedPagingProvider pagingProvider, BulkDataExportProvider bulkDataExportProvider,
			BinaryAccessProvider binaryAccessProvider, BinaryStorageInterceptor<?> binaryStorageInterceptor) {
		if (!"R4".equalsIgnoreCase(props.getFhir_version())) {
			throw new IllegalStateException("this build serves FHIR R4 only; hapi.fhir.fhir_version=" + props.getFhir_version());
		}
		RestfulServer server = new RestfulServer(systemDao.getContext());
		server.registerProviders(resourceProviders.createProviders());
		server.registerProvider(systemProvider);
		server.setServerConformanceProvider(new JpaCapabilityStatementProvider(
				server, systemDao, storageSettings, searchParamRegistry, validationSupport));
		server.setPagingProvider(pagingProvider);
		server.setDefaultResponseEncoding(EncodingEnum.JSON);
		server.setDefaultPrettyPrint(props.getDefault_pretty_print());
		if (props.getServer_address() != null && !props.getServer_address().isBlank()) {
			server.setServerAddressStrategy(new HardcodedServerAddressStrategy(props.getServer_address()));
		} else if (props.getUse_apache_address_strategy()) {
			server.setServerAddressStrategy(props.getUse_apache_address_strategy_https()
					? ApacheProxyAddressStrategy.forHttps() : ApacheProxyAddressStrategy.forHttp());
		} else {
			server.setServerAddressStrategy(new IncomingRequestAddressStrategy());
		}
		if (props.getBulk_export_enabled()) {
			server.registerProvider(bulkDataExportProvider);
		}
		if (props.getBinary_storage_enabled()) {
			server.registerProvider(binaryAccessProvider);
			server.registerInterceptor(binaryStorageInterceptor);
		}
		return server;
	}
}
