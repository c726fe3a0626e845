from pathlib import Path

import pytest

from sidecar.config import ConfigError, load_settings


def test_defaults_apply_without_file_or_environment():
    settings = load_settings(environ={})
    assert settings.upstream_url == "http://localhost:8080/fhir" and settings.port == 8000


def test_environment_overrides_yaml(tmp_path: Path):
    config = tmp_path / "sidecar.yaml"
    config.write_text("port: 9001\npublic_url: https://yaml.example\n")
    settings = load_settings(config, environ={"SIDECAR_PORT": "9002"})
    assert settings.port == 9002 and settings.public_url == "https://yaml.example"


def test_yaml_named_by_sidecar_config(tmp_path: Path):
    config = tmp_path / "sidecar.yaml"
    config.write_text("upstream_url: http://hapi:8080/fhir\n")
    assert load_settings(environ={"SIDECAR_CONFIG": str(config)}).upstream_url == "http://hapi:8080/fhir"


def test_public_fhir_base_drops_trailing_slash():
    assert load_settings(environ={"SIDECAR_PUBLIC_URL": "https://p.example/x/"}).public_fhir_base == \
        "https://p.example/x/fhir"


@pytest.mark.parametrize("env", [{"SIDECAR_PORT": "eighty"}, {"SIDECAR_PORT": "70000"},
                                 {"SIDECAR_UPSTREAM_URL": "hapi:8080"}, {"SIDECAR_PUBLIC_URL": "https://p?x=1"}])
def test_malformed_settings_are_named(env):
    with pytest.raises(ConfigError):
        load_settings(environ=env)


def test_unknown_yaml_key_is_refused(tmp_path: Path):
    config = tmp_path / "sidecar.yaml"
    config.write_text("prot: 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(config, environ={})


@pytest.mark.parametrize("raw, expected", [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False)])
def test_boolean_settings_read_common_spellings(raw, expected):
    assert load_settings(environ={"SIDECAR_DRUG_PRIOR_AUTHORIZATIONS": raw}).drug_prior_authorizations is expected


def test_a_boolean_setting_refuses_anything_else():
    with pytest.raises(ConfigError, match="drug_prior_authorizations"):
        load_settings(environ={"SIDECAR_DRUG_PRIOR_AUTHORIZATIONS": "maybe"})


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(ConfigError, match="service_date_timezone"):
        load_settings(environ={"SIDECAR_SERVICE_DATE_TIMEZONE": "Mars/Olympus"})


def test_the_fhir_packages_folder_comes_from_its_setting_and_has_no_default():
    assert load_settings(environ={}).fhir_packages_dir == ""
    assert load_settings(environ={"SIDECAR_FHIR_PACKAGES_DIR": "/srv/fhir-packages"}).fhir_packages_dir == \
        "/srv/fhir-packages"


def test_a_member_identity_provider_needs_its_client_and_the_subject_system():
    with pytest.raises(ConfigError, match="member_oidc_issuer needs"):
        load_settings(environ={"SIDECAR_MEMBER_OIDC_ISSUER": "https://login.example",
                               "SIDECAR_MEMBER_OIDC_CLIENT_ID": "x"})
    settings = load_settings(environ={"SIDECAR_MEMBER_OIDC_ISSUER": "https://login.example",
                                      "SIDECAR_MEMBER_OIDC_CLIENT_ID": "x",
                                      "SIDECAR_MEMBER_OIDC_SUBJECT_SYSTEM": "urn:login"})
    assert settings.member_oidc_client_secret == ""
