"""Bench profiles: presets that decide which artefacts run and how (CLI ``--profile``)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_tl.errors import ConfigError, check_choice


@dataclass(frozen=True)
class Profile:
    """``formats`` None = every format; ``runtimes`` None = every runtime that can run a file (``--runtimes``
    overrides); ``batch``/``threads`` None = the user's flags; ``pin`` pins the child to the first ``threads``
    allowed cores; ``int8_first`` measures int8 artefacts before the others."""

    name: str
    formats: tuple[str, ...] | None = None
    runtimes: tuple[str, ...] | None = None
    batch: int | None = None
    threads: tuple[int, ...] | None = None
    pin: bool = False
    int8_first: bool = False
    note: str | None = None

    def check_flags(self, given: dict[str, object]) -> None:
        """Refuse flags the user set explicitly (``{"threads": [1, 4]}``) that this profile fixes otherwise."""
        for flag, fixed in (("threads", self.threads), ("batch", self.batch)):
            if fixed is None or flag not in given:
                continue
            value = given[flag]
            if (tuple(value) if isinstance(value, (list, tuple)) else value) != fixed:
                shown = ",".join(map(str, fixed)) if isinstance(fixed, tuple) else fixed
                raise ConfigError(f"--profile {self.name} fixes --{flag} {shown}",
                                  f"drop --{flag} or use --profile desktop")


PROFILES: dict[str, Profile] = {
    "desktop": Profile("desktop"),
    "mobile": Profile(
        "mobile", formats=("tflite",), runtimes=("litert",), batch=1, threads=(1, 2), pin=True, int8_first=True,
        note="mobile profile: the host CPU at mobile-class settings (LiteRT + XNNPACK, batch 1, 1-2 pinned "
             "cores), not a phone",
    ),
}


def get_profile(name: str) -> Profile:
    """The preset called ``name`` (unknown names raise with the valid ones)."""
    return PROFILES[check_choice("profile", name, PROFILES)]
