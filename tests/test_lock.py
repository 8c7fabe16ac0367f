"""``requirements.lock`` (what README's commands install) and ``setup.cfg``'s requirements (what
``pip install lmms-eval-flow`` resolves) must not drift apart: every declared requirement is locked,
at a version its bounds allow."""

import configparser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def declared() -> list[Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines() + config["options.extras_require"]["test"].splitlines()
    return [Requirement(line) for line in (line.strip() for line in lines) if line and not line.startswith("#")]


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_every_declared_requirement_is_locked_within_its_bounds():
    pins = locked()
    missing = [str(r) for r in declared() if canonicalize_name(r.name) not in pins]
    outside = [f"{r} (locked {pins[canonicalize_name(r.name)]})" for r in declared()
               if canonicalize_name(r.name) in pins and not r.specifier.contains(pins[canonicalize_name(r.name)],
                                                                                  prereleases=True)]
    assert not missing, f"declared in setup.cfg, missing from requirements.lock: {missing}"
    assert not outside, f"locked outside setup.cfg's bounds: {outside}"


def test_the_lock_pins_every_package_exactly_and_keeps_the_known_bounds():
    pins = locked()
    assert len(pins) > 100  # the whole tree, not the top level
    assert int(pins["filelock"].split(".")[0]) < 4  # lmms-eval 0.7.3 imports filelock._api
    assert (pins["torch"], pins["torchvision"], pins["lmms-eval"]) == ("2.14.1", "0.29.1", "0.7.3")


def test_the_installed_environment_is_the_locked_one():
    """What the tests run on is what the lock says (README's commands install it)."""
    from importlib.metadata import version

    drift = {name: (pin, version(name)) for name, pin in locked().items() if version(name) != pin}
    assert not drift, f"installed versions differ from requirements.lock (pinned, installed): {drift}"


def test_check_install_sets_aside_only_decords_wheel_tag():
    from lmms_eval_flow.install_check import real_problems

    output = ("decord 0.6.0 is not supported on this platform\n"
              "lmms-eval 0.7.3 has requirement filelock<4, but you have filelock 4.3.1.\n")
    assert real_problems(output) == ["lmms-eval 0.7.3 has requirement filelock<4, but you have filelock 4.3.1."]
    assert real_problems("decord 0.6.0 is not supported on this platform\n") == []
    assert real_problems("decord 0.7.0 is not supported on this platform\n") != []
