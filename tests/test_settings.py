from pathlib import Path

import pytest

from foundation.settings import Settings, SettingsError, describe


def test_defaults_are_for_a_laptop():
    settings = Settings.load(environ={})
    assert settings.kafka_bootstrap == "localhost:9092"
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.frames_topic == "framewire.frames"
    assert settings.dlq_topic == "framewire.frames.dlq"
    assert settings.explicit == frozenset()


def test_environment_then_overrides_win_and_are_marked_explicit():
    env = {"FRAMEWIRE_TOPIC_PREFIX": "cam.", "FRAMEWIRE_PARTITIONS": "8", "HOME_X": "1"}
    settings = Settings.load(environ=env, partitions=3, redis_url=None)
    assert settings.topic_prefix == "cam."
    assert settings.results_topic == "cam.results"
    assert settings.partitions == 3
    assert settings.explicit == {"topic_prefix", "partitions"}


def test_state_dir_expands_user(monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    settings = Settings.load(environ={"FRAMEWIRE_STATE_DIR": "~/fw"})
    assert settings.state_dir == Path("/home/someone/fw")


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("FRAMEWIRE_PARTITIONS", "many", "expected an integer"),
        ("FRAMEWIRE_PARTITIONS", "0", "must be at least 1"),
        ("FRAMEWIRE_STACK_KAFKA_PORT", "70000", "between 1 and 65535"),
        ("FRAMEWIRE_FRAMES_RETENTION_HOURS", "-1", "must not be negative"),
        ("FRAMEWIRE_FRAMES_RETENTION_HOURS", "soon", "expected a number"),
        ("FRAMEWIRE_KAFKA_BOOTSTRAP", "localhost", "expected host:port"),
        ("FRAMEWIRE_REDIS_URL", "http://x", "expected a redis://"),
        ("FRAMEWIRE_LOG_FORMAT", "xml", "must be one of auto, json, console"),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(variable, value, reason):
    with pytest.raises(SettingsError) as error:
        Settings.load(environ={variable: value})
    message = str(error.value)
    assert message.startswith(f"{variable}={value!r}")
    assert reason in message
    assert "\n" not in message


def test_bad_flag_names_the_flag():
    with pytest.raises(SettingsError, match=r"^--partitions='x': expected an integer"):
        Settings.load(environ={}, partitions="x")


def test_celery_uses_its_own_redis_database():
    settings = Settings.load(environ={"FRAMEWIRE_REDIS_URL": "redis://cache:6380/0"})
    assert settings.celery_url == "redis://cache:6380/1"
    custom = Settings.load(environ={"FRAMEWIRE_CELERY_BROKER_URL": "redis://q:1/5"})
    assert custom.celery_url == "redis://q:1/5"


def test_every_setting_is_described():
    variables = [variable for variable, _, _ in describe()]
    assert "FRAMEWIRE_KAFKA_BOOTSTRAP" in variables
    assert len(variables) == len(set(variables))
    assert all(help_text for _, _, help_text in describe())


def test_readme_lists_every_setting():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [variable for variable, _, _ in describe() if f"`{variable}`" not in readme]
    assert not missing, f"README settings table lacks {missing}"
