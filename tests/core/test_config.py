"""Configuration order: explicit > CMF_* env > CMF_CONFIG/./cmf.toml > the home's cmf.toml >
defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmf_core.config import is_disabled, load_settings, resolve_home
from cmf_core.errors import ConfigError


def test_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cmf.toml").write_text('site = "from-file"\npue = 1.2\n')
    assert load_settings().site == "from-file"
    assert load_settings().pue == 1.2
    monkeypatch.setenv("CMF_SITE", "from-env")
    assert load_settings().site == "from-env"
    assert load_settings(site="explicit").site == "explicit"


def test_the_homes_config_file_comes_after_the_local_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CMF_HOME", "CMF_SITE", "CMF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".cmf").mkdir()
    (tmp_path / ".cmf" / "cmf.toml").write_text('site = "home-site"\npue = 1.3\n')
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert (load_settings().site, load_settings().pue) == ("home-site", 1.3)
    (tmp_path / "work" / "cmf.toml").write_text('site = "local"\n')
    assert (load_settings().site, load_settings().pue) == ("local", 1.3)  # key by key
    monkeypatch.setenv("CMF_HOME", str(tmp_path / "elsewhere"))  # another home: not read
    assert (load_settings().site, load_settings().pue) == ("local", 1.0)
    assert load_settings(home=tmp_path / ".cmf").pue == 1.3  # an explicit home's file is


def test_explicit_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "site.toml"
    f.write_text('site = "hpc"\nstore_url = "sqlite:////tmp/x.db"\n')
    monkeypatch.setenv("CMF_CONFIG", str(f))
    s = load_settings()
    assert (s.site, s.resolved_store_url) == ("hpc", "sqlite:////tmp/x.db")
    monkeypatch.setenv("CMF_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


def test_a_config_file_that_is_not_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cmf.toml").write_text('site = "hpc"\nstore_url = \n')
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert str(e.value) == ("config file cmf.toml is not valid TOML: Invalid value "
                            "(at line 2, column 13)")
    f = tmp_path / "site.toml"
    f.write_bytes(b'site = "\xff"\n')
    monkeypatch.setenv("CMF_CONFIG", str(f))
    with pytest.raises(ConfigError, match=rf"^config file {f} is not UTF-8 text \(byte 8\)"):
        load_settings()


def test_unknown_keys_are_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CMF_STORE", "x")
    with pytest.raises(ConfigError, match=r"unknown setting.*CMF_STORE"):
        load_settings()
    monkeypatch.delenv("CMF_STORE")
    (tmp_path / "cmf.toml").write_text('sitee = "typo"\n')
    with pytest.raises(ConfigError) as e:
        load_settings()
    # the file and the known keys are named (it was "sitee: Extra inputs are not permitted")
    assert str(e.value).startswith(
        "invalid cmf configuration: sitee: unknown key in cmf.toml; known keys are: "
        "carbon_intensity, carbon_region, config, ")
    assert str(e.value).endswith(", site, spool_dir, store_url, token")
    (tmp_path / "cmf.toml").unlink()
    with pytest.raises(ConfigError, match=r"^invalid cmf configuration: bogus: unknown key \(an "
                                          r"argument\); known keys are: carbon_intensity, "):
        load_settings(bogus=1)


def test_bad_values_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMF_PUE", "0.5")
    with pytest.raises(ConfigError, match="pue"):
        load_settings()
    monkeypatch.delenv("CMF_PUE")
    with pytest.raises(ConfigError, match="site"):
        load_settings(site="has space")


def test_home_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMF_HOME")
    (tmp_path / ".cmf").mkdir()
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert resolve_home() == tmp_path / ".cmf"
    assert load_settings().resolved_store_url == f"sqlite:///{tmp_path / '.cmf' / 'cmf.db'}"


def test_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not is_disabled()
    monkeypatch.setenv("CMF_DISABLED", "true")
    assert is_disabled()


@pytest.mark.parametrize("name", ["CPU_WATTS_PER_CORE", "RAM_WATTS_PER_GB", "CARBON_INTENSITY",
                                  "ENERGY_SAMPLE_HZ"])
@pytest.mark.parametrize("value", ["inf", "nan"])
def test_energy_numbers_must_be_finite(name: str, value: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An infinite watts-per-core override made every footprint infinite (and unstorable)."""
    monkeypatch.setenv(f"CMF_{name}", value)
    with pytest.raises(ConfigError, match=rf"{name.lower()}: Input should be a finite number"):
        load_settings()


@pytest.mark.parametrize("value", ["inf", "nan", "3601", "0"])
def test_hook_timeout_is_finite_and_bounded(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMF_HOOK_TIMEOUT_S", value)
    with pytest.raises(ConfigError, match="hook_timeout_s"):
        load_settings()


@pytest.mark.parametrize("value", ["http://[::1", "localhost:8080", "http://h:99999", "ftp://h",
                                   "ftp://ops:hunter2@h", "http://ops:hunter2@h:x"])
def test_server_url_must_be_a_valid_http_url(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMF_SERVER_URL", value)
    with pytest.raises(ConfigError, match=r"server_url: .*server URL") as bad:
        load_settings()
    assert "hunter2" not in str(bad.value)  # a URL's password never shows
    monkeypatch.setenv("CMF_SERVER_URL", "https://cmf.example.com:8443/base")
    assert load_settings().server_url == "https://cmf.example.com:8443/base"


@pytest.mark.parametrize(("name", "value", "kind", "problem"), [
    ("CMF_FEDERATION_TOKENS", "{bad", "a JSON object", "line 1 column 2"),
    ("CMF_FEDERATION_PEER_PIPELINES", "", "a JSON object", "line 1 column 1"),
    ("CMF_FEDERATION_ARTIFACT_ROOTS", "/tmp", "a JSON array", "line 1 column 1"),
    ("CMF_FEDERATION_SHARE_PIPELINES", '["a"', "a JSON array", "line 1 column 5"),
])
def test_a_dict_or_list_variable_that_is_not_json_is_named(
        name: str, value: str, kind: str, problem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert str(e.value).startswith(f"{name} must be {kind}, e.g. ")
    assert "not valid JSON" in str(e.value) and problem in str(e.value)


def test_a_bad_json_variable_is_one_error_line_and_never_echoes_the_value(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cmf_core.cli import main

    monkeypatch.setenv("CMF_FEDERATION_TOKENS", '{"http://hpc:8080": s3cret}')
    with pytest.raises(SystemExit) as e:
        main(["pipelines"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: CMF_FEDERATION_TOKENS must be a JSON object") and \
        err.count("\n") == 1
    assert "s3cret" not in err and "Traceback" not in err
    # valid JSON of the wrong shape, and a wrong type in cmf.toml, name the key as before
    monkeypatch.setenv("CMF_FEDERATION_TOKENS", '["x"]')
    with pytest.raises(ConfigError, match="federation_tokens: Input should be a valid dict"):
        load_settings()


def test_a_bad_value_says_where_it_came_from(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """"serve_port: Input should be less than or equal to 65535" said neither the variable nor
    the file; and an unknown key in one of two config files named both."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CMF_HOME", str(home))
    (home / "cmf.toml").write_text('site = "hpc"\npue = 0.5\n')
    monkeypatch.setenv("CMF_SERVE_PORT", "99999")
    with pytest.raises(ConfigError) as e:
        load_settings()
    problems = str(e.value).removeprefix("invalid cmf configuration: ").split("; ")
    assert sorted(problems) == [
        f"pue: Input should be greater than or equal to 1 in {home / 'cmf.toml'}",
        "serve_port: Input should be less than or equal to 65535 (from CMF_SERVE_PORT)"]
    monkeypatch.delenv("CMF_SERVE_PORT")
    (home / "cmf.toml").write_text('site = "hpc"\n')
    (tmp_path / "cmf.toml").write_text('sitee = "typo"\n')  # the local file, not the home's
    with pytest.raises(ConfigError, match=r"^invalid cmf configuration: sitee: unknown key in "
                                          r"cmf.toml; known keys"):
        load_settings()


def test_a_wrong_type_in_the_file_names_the_key(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cmf.toml").write_text('federation_artifact_roots = "/data"\n')
    with pytest.raises(ConfigError, match="federation_artifact_roots: Input should be a valid"):
        load_settings()


def test_the_home_named_in_the_config_file_brings_its_own_cmf_toml(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`home` in ./cmf.toml chose the store, but that home's cmf.toml (the site `cmf init
    --site` writes there) was not read: records carried the host name as their site."""
    for name in ("CMF_HOME", "CMF_SITE", "CMF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    data.mkdir()
    (data / "cmf.toml").write_text('site = "hpc"\npue = 1.4\n')
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    (tmp_path / "proj" / "cmf.toml").write_text(f'home = "{data}"\npue = 1.2\n')
    s = load_settings()
    assert (s.home_path, s.site, s.pue) == (data, "hpc", 1.2)  # the local file still wins
    monkeypatch.setenv("CMF_HOME", str(tmp_path / "other"))  # CMF_HOME beats the file's home
    assert load_settings().site != "hpc"


def test_a_tilde_in_the_spool_folder_is_the_users_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """CMF_SPOOL_DIR='~/spool' (a quoted shell value, a TOML string, a unit file) spooled into
    a folder named '~' under the current directory."""
    monkeypatch.setenv("CMF_SPOOL_DIR", "~/cmf-spool")
    assert load_settings().spool_path == Path.home() / "cmf-spool"
